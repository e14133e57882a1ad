using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Backends;

/// <summary>Whether a byte range holds data or is a hole (SBC-3 GET LBA STATUS, 5.7).</summary>
public enum AllocationState
{
    Mapped,
    Deallocated,
}

/// <summary>
/// The bytes behind a volume: a sparse file or a block device. Byte-addressed; knows nothing of
/// SCSI blocks or reservations. Opened once per volume and shared by all of its paths, so every
/// method is safe to call from several threads at once.
/// Failures throw <see cref="BackingStoreException"/> carrying the errno.
/// </summary>
public interface IBackingStore : IDisposable
{
    long SizeBytes { get; }

    /// <summary>Whether Unmap really deallocates (punch hole / discard): LBPME in READ CAPACITY(16).</summary>
    bool SupportsUnmap { get; }

    /// <summary>Whether deallocated ranges read back as zeroes: LBPRZ.</summary>
    bool UnmapReadsZeroes { get; }

    /// <summary>Preferred alignment for unmap, in bytes (discard granularity; file system block for files).</summary>
    int UnmapGranularity { get; }

    /// <summary>
    /// The smallest unit the store writes without reading back around it, in bytes (a block
    /// device's physical sector, BLKPBSZGET; a file's st_blksize, at most 4 KiB); 0 if unknown.
    /// Reported as LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT in READ CAPACITY(16), so that a
    /// 512-byte volume on 4 KiB storage is aligned by the initiator.
    /// </summary>
    int PhysicalBlockSize => 0;

    void Read(ReadOnlySpan<IoVec> destination, long offset);
    void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess);
    void Read(Span<byte> destination, long offset);
    void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess);

    /// <summary>Makes every completed write durable (fdatasync).</summary>
    void Flush();

    /// <summary>Deallocates the range; parts that cannot be deallocated are zeroed.</summary>
    void Unmap(long offset, long length);

    /// <summary>Writes zeroes over the range without necessarily allocating.</summary>
    void WriteZeroes(long offset, long length);

    /// <summary>State of the byte at <paramref name="offset"/> and how far that state runs.</summary>
    AllocationState GetAllocation(long offset, out long runLength);

    /// <summary>
    /// Grows the store to <paramref name="newSizeBytes"/> (dev_size written on the backstore). A
    /// file is extended sparse; a block device must already have been grown (lvextend). Shrinking
    /// is refused: the initiators' data behind the new end would be lost.
    /// </summary>
    void Resize(long newSizeBytes) => throw new BackingStoreException("this backing store cannot be resized", 95);
}

/// <summary>
/// The one-buffer forms of <see cref="IBackingStore"/> for a store whose vectored path is all it
/// has: one <see cref="IoVec"/> on the stack, so no allocation.
/// </summary>
internal static unsafe class OneBuffer
{
    public static void Read(IBackingStore store, Span<byte> destination, long offset)
    {
        fixed (byte* p = destination)
        {
            var v = new IoVec((nint)p, destination.Length);
            store.Read(new ReadOnlySpan<IoVec>(&v, 1), offset);
        }
    }

    public static void Write(IBackingStore store, ReadOnlySpan<byte> source, long offset, bool forceUnitAccess)
    {
        fixed (byte* p = source)
        {
            var v = new IoVec((nint)p, source.Length);
            store.Write(new ReadOnlySpan<IoVec>(&v, 1), offset, forceUnitAccess);
        }
    }
}

public sealed class BackingStoreException : IOException
{
    public BackingStoreException(string message, int errno) : base(message) => Errno = errno;
    public int Errno { get; }
}
