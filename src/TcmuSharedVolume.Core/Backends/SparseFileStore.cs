using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// A volume kept in a regular (usually sparse) file. Data moves with preadv/pwritev straight
/// between the file and the command's buffer; FUA writes use pwritev2(RWF_DSYNC); UNMAP punches
/// holes, so thin provisioning is real and deallocated ranges read zeroes.
/// </summary>
public sealed unsafe class SparseFileStore : IBackingStore
{
    private const int ENXIO = 6;
    private int _fd;
    /// <summary>
    /// One buffered write into the file at a time. The file system serializes them anyway (ext4,
    /// XFS and btrfs hold the inode's i_rwsem exclusively while copying into the page cache), but
    /// a writer that finds the lock held spins on it in the kernel for as long as the holder
    /// copies (rwsem optimistic spinning): CPU taken from every other command. Waiting here
    /// sleeps instead. Reads are not gated: they do not take that lock.
    /// </summary>
    private readonly Lock _writeGate = new();
    private readonly bool _zeroRangeWorks;
    private volatile bool _zeroRangeRefused;

    private SparseFileStore(int fd, long size, int blockSize, bool punchHole, bool zeroRange)
    {
        _fd = fd;
        _size = size;
        UnmapGranularity = blockSize > 0 ? blockSize : 4096;
        SupportsUnmap = punchHole;
        _zeroRangeWorks = zeroRange;
    }

    private long _size;

    public long SizeBytes => Volatile.Read(ref _size);

    public void Resize(long newSizeBytes)
    {
        long current = SizeBytes;
        if (newSizeBytes == current) return;
        if (newSizeBytes < current)
            throw new BackingStoreException($"refusing to shrink the volume from {current} to {newSizeBytes} bytes: data behind the new end would be lost", 22);
        // ftruncate extends without allocating: the new range is a hole and reads zeroes.
        if (Libc.ftruncate(_fd, newSizeBytes) < 0)
            throw FileDescriptorIo.Error("ftruncate", Marshal.GetLastPInvokeError());
        Volatile.Write(ref _size, newSizeBytes);
    }

    /// <summary>True when the file system punches holes; a punched range reads zeroes, including
    /// the unaligned edges that the kernel zeroes instead of deallocating.</summary>
    public bool SupportsUnmap { get; }

    public bool UnmapReadsZeroes => SupportsUnmap;

    /// <summary>st_blksize: the file system block, the unit in which holes are punched.</summary>
    public int UnmapGranularity { get; }

    /// <summary>st_blksize, at most 4 KiB: writes below the file system block (and below a page
    /// of the page cache) are read-modify-write. Larger st_blksize values (NFS, some FUSE file
    /// systems: up to megabytes) are a preferred transfer size, not a unit of atomic writes,
    /// and would make initiators align everything to them.</summary>
    public int PhysicalBlockSize => Math.Min(UnmapGranularity, MaxPhysicalBlockSize);

    private const int MaxPhysicalBlockSize = 4096;

    /// <summary>Opens (and if asked, creates, mode 0600) the file; see <see cref="BackingPath"/>.</summary>
    public static SparseFileStore Open(string path, BackingStoreOptions? options = null)
    {
        using var resolved = BackingPath.Resolve(path);
        if (resolved.Key is { IsBlockDevice: true })
            throw new BackingStoreException($"{path} is not a regular file", 22);
        var store = resolved.Open(options);
        if (store is SparseFileStore file) return file;
        store.Dispose();
        throw new BackingStoreException($"{path} is not a regular file", 22);
    }

    /// <summary>Takes over <paramref name="fd"/>, a regular file opened read-write.</summary>
    internal static SparseFileStore FromDescriptor(int fd, in StatBuffer st, bool created)
    {
        _ = created; // the creator has already sized or allocated it
        if (!st.IsRegularFile) throw new BackingStoreException("not a regular file", 22);
        // Probe past the end of the file, where punching or zeroing changes nothing: the file
        // system says EOPNOTSUPP before it looks at the range if it cannot do the operation.
        long probeAt = (st.Size + 65535) & ~65535L;
        bool punch = Libc.fallocate(fd, Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, probeAt, 4096) == 0;
        bool zero = Libc.fallocate(fd, Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE, probeAt, 4096) == 0;
        return new SparseFileStore(fd, st.Size, st.BlockSize, punch, zero);
    }

    private int Fd
    {
        get
        {
            int fd = _fd;
            ObjectDisposedException.ThrowIf(fd < 0, this);
            return fd;
        }
    }

    public void Read(ReadOnlySpan<IoVec> destination, long offset) => FileDescriptorIo.ReadFully(Fd, destination, offset);

    public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess)
    {
        if (forceUnitAccess)
        {
            // Not through the gate: the file system syncs after it drops the inode lock, and the
            // gate would make FUA writes wait for each other's device I/O.
            FileDescriptorIo.WriteFully(Fd, source, offset, dsync: true);
            return;
        }
        lock (_writeGate)
            FileDescriptorIo.WriteFully(Fd, source, offset, dsync: false);
    }

    public void Read(Span<byte> destination, long offset) => FileDescriptorIo.ReadFully(Fd, destination, offset);

    public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess) =>
        OneBuffer.Write(this, source, offset, forceUnitAccess);

    public void Flush() => FileDescriptorIo.Sync(Fd);

    public void Unmap(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return;
        if (SupportsUnmap)
        {
            Fallocate(Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
            return;
        }
        WriteZeroBuffers(offset, length);
    }

    public void WriteZeroes(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return;
        if (_zeroRangeWorks && !_zeroRangeRefused)
        {
            if (TryFallocate(Libc.FALLOC_FL_ZERO_RANGE | Libc.FALLOC_FL_KEEP_SIZE, offset, length, out int errno)) return;
            if (errno != Libc.EOPNOTSUPP) throw FileDescriptorIo.Error("fallocate(ZERO_RANGE)", errno);
            _zeroRangeRefused = true;
        }
        if (SupportsUnmap)
        {
            Fallocate(Libc.FALLOC_FL_PUNCH_HOLE | Libc.FALLOC_FL_KEEP_SIZE, offset, length);
            return;
        }
        WriteZeroBuffers(offset, length);
    }

    public AllocationState GetAllocation(long offset, out long runLength)
    {
        if ((ulong)offset >= (ulong)SizeBytes) throw new ArgumentOutOfRangeException(nameof(offset));
        int fd = Fd;
        long data = Libc.lseek(fd, offset, Libc.SEEK_DATA);
        if (data < 0)
        {
            int e = Marshal.GetLastPInvokeError();
            if (e != ENXIO) throw FileDescriptorIo.Error("lseek(SEEK_DATA)", e);
            runLength = SizeBytes - offset; // no data from here to the end
            return AllocationState.Deallocated;
        }
        if (data > offset)
        {
            runLength = Math.Min(data, SizeBytes) - offset;
            return AllocationState.Deallocated;
        }
        long hole = Libc.lseek(fd, offset, Libc.SEEK_HOLE);
        if (hole < 0) throw FileDescriptorIo.Error("lseek(SEEK_HOLE)", Marshal.GetLastPInvokeError());
        runLength = Math.Min(hole, SizeBytes) - offset;
        if (runLength <= 0) runLength = SizeBytes - offset;
        return AllocationState.Mapped;
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > SizeBytes - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range {offset}+{length} outside the store");
    }

    private void Fallocate(int mode, long offset, long length)
    {
        if (!TryFallocate(mode, offset, length, out int errno))
            throw FileDescriptorIo.Error("fallocate", errno);
    }

    private bool TryFallocate(int mode, long offset, long length, out int errno)
    {
        int fd = Fd;
        int r;
        do r = Libc.fallocate(fd, mode, offset, length);
        while (r < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
        errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
        return r == 0;
    }

    private void WriteZeroBuffers(long offset, long length) => ZeroWriter.Write(Fd, offset, length);

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}

/// <summary>Writes zeroes with ordinary writes, for stores that cannot punch or zero ranges.</summary>
internal static unsafe class ZeroWriter
{
    public const int ChunkBytes = 1 << 20;

    /// <summary>One shared, never written, page-aligned 1 MiB of zeroes (aligned for O_DIRECT too);
    /// allocated on first use by the type initialiser of a nested class.</summary>
    public static byte* Zeroes => (byte*)Holder.Zeroes;

    private static class Holder
    {
        public static readonly nint Zeroes = Allocate();

        private static nint Allocate()
        {
            var p = NativeMemory.AlignedAlloc(ChunkBytes, 4096);
            NativeMemory.Clear(p, ChunkBytes);
            return (nint)p;
        }
    }

    public static void Write(int fd, long offset, long length)
    {
        byte* z = Zeroes;
        while (length > 0)
        {
            int n = (int)Math.Min(length, ChunkBytes);
            FileDescriptorIo.WriteFully(fd, new ReadOnlySpan<byte>(z, n), offset, dsync: false);
            offset += n;
            length -= n;
        }
    }
}
