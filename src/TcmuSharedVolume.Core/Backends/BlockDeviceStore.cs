using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// A volume on a block device (an LVM logical volume, a partition, a whole disk).
/// Size from BLKGETSIZE64; UNMAP = BLKDISCARD on the part aligned to the discard granularity
/// plus BLKZEROOUT on the unaligned edges; WRITE SAME of zeroes = BLKZEROOUT.
/// With <see cref="BackingStoreOptions.DirectIo"/> the device is opened O_DIRECT: iovecs that
/// are aligned to the logical sector size (the TCMU data area is page-aligned, so nearly all
/// are) go straight to the device; any other request is bounced through a per-thread aligned
/// buffer, so O_DIRECT never fails with EINVAL because of the initiator's buffer layout.
/// </summary>
public sealed unsafe class BlockDeviceStore : IBackingStore
{
    private const int BounceBytes = 1 << 20;
    private const int EINVAL = 22;

    [ThreadStatic] private static byte* t_bounce;

    private int _fd;
    private readonly bool _direct;
    private readonly int _sectorSize;
    private readonly long _discardGranularity;

    private BlockDeviceStore(int fd, long size, int sectorSize, bool direct, bool discard, long discardGranularity, bool discardZeroes)
    {
        _fd = fd;
        _size = size;
        _sectorSize = sectorSize;
        _direct = direct;
        SupportsUnmap = discard;
        _discardGranularity = Math.Max(discardGranularity, sectorSize);
        UnmapReadsZeroes = discard && discardZeroes;
        _zeroOut = ZeroOut;
        _writeZeroBuffers = WriteZeroBuffers;
    }

    private long _size;
    private readonly Action<long, long> _zeroOut;
    private readonly Action<long, long> _writeZeroBuffers;

    public long SizeBytes => Volatile.Read(ref _size);

    public void Resize(long newSizeBytes)
    {
        long current = SizeBytes;
        if (newSizeBytes == current) return;
        if (newSizeBytes < current)
            throw new BackingStoreException($"refusing to shrink the volume from {current} to {newSizeBytes} bytes: data behind the new end would be lost", EINVAL);
        ulong device;
        if (Libc.ioctl(_fd, Libc.BLKGETSIZE64, &device) < 0) throw FileDescriptorIo.Error("ioctl(BLKGETSIZE64)", Marshal.GetLastPInvokeError());
        if ((long)device < newSizeBytes)
            throw new BackingStoreException($"the block device has {device} bytes, fewer than the {newSizeBytes} asked: grow it first (lvextend)", EINVAL);
        Volatile.Write(ref _size, newSizeBytes);
    }

    /// <summary>True when the device accepts discards (queue/discard_max_bytes &gt; 0).</summary>
    public bool SupportsUnmap { get; }

    /// <summary>Only when the administrator says so: the kernel no longer promises that
    /// discarded sectors read zeroes (BLKDISCARDZEROES always answers 0 since Linux 4.12).</summary>
    public bool UnmapReadsZeroes { get; }

    public int UnmapGranularity => (int)Math.Min(_discardGranularity, 1 << 30);

    /// <summary>Logical sector size of the device (BLKSSZGET).</summary>
    public int LogicalSectorSize => _sectorSize;

    private int _physicalSectorSize;

    /// <summary>Physical sector size of the device (BLKPBSZGET): 4096 on 512e and 4Kn disks.
    /// Asked once, on first use (READ CAPACITY(16)); the logical sector size if the ioctl fails.</summary>
    public int PhysicalBlockSize
    {
        get
        {
            int known = Volatile.Read(ref _physicalSectorSize);
            if (known != 0) return known;
            uint physical;
            int size = Libc.ioctl(Fd, Libc.BLKPBSZGET, &physical) == 0 && physical is > 0 and <= 1u << 20
                ? (int)physical : _sectorSize;
            Volatile.Write(ref _physicalSectorSize, size);
            return size;
        }
    }

    /// <summary>Opens the device O_EXCL (refused while mounted or in use); see <see cref="BackingPath"/>.</summary>
    public static BlockDeviceStore Open(string path, BackingStoreOptions? options = null)
    {
        using var resolved = BackingPath.Resolve(path);
        if (resolved.Key is not { IsBlockDevice: true })
            throw new BackingStoreException($"{path} is not a block device", EINVAL);
        var store = resolved.Open(options);
        if (store is BlockDeviceStore device) return device;
        store.Dispose();
        throw new BackingStoreException($"{path} is not a block device", EINVAL);
    }

    /// <summary>Takes over <paramref name="fd"/>, a block device opened read-write (and O_DIRECT
    /// when <see cref="BackingStoreOptions.DirectIo"/>).</summary>
    internal static BlockDeviceStore FromDescriptor(int fd, in StatBuffer st, BackingStoreOptions options)
    {
        if (!st.IsBlockDevice) throw new BackingStoreException("not a block device", EINVAL);
        ulong size;
        if (Libc.ioctl(fd, Libc.BLKGETSIZE64, &size) < 0) throw FileDescriptorIo.Error("ioctl(BLKGETSIZE64)", Marshal.GetLastPInvokeError());
        int sector;
        if (Libc.ioctl(fd, Libc.BLKSSZGET, &sector) < 0) sector = 512;
        string queue = $"/sys/dev/block/{st.RdevMajor}:{st.RdevMinor}/queue/";
        long discardMax = ReadSysfsNumber(queue + "discard_max_bytes");
        long granularity = ReadSysfsNumber(queue + "discard_granularity");
        return new BlockDeviceStore(fd, (long)size, sector, options.DirectIo, discardMax > 0,
            granularity > 0 ? granularity : sector, options.DiscardZeroesData);
    }

    private static long ReadSysfsNumber(string file)
    {
        try
        {
            return long.TryParse(File.ReadAllText(file).Trim(), out long v) ? v : 0;
        }
        catch (IOException) { return 0; }
        catch (UnauthorizedAccessException) { return 0; }
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

    public void Read(ReadOnlySpan<IoVec> destination, long offset)
    {
        if (!_direct || IsAligned(destination, offset)) FileDescriptorIo.ReadFully(Fd, destination, offset);
        else BouncedRead(destination, offset);
    }

    public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess)
    {
        if (!_direct || IsAligned(source, offset)) FileDescriptorIo.WriteFully(Fd, source, offset, forceUnitAccess);
        else BouncedWrite(source, offset, forceUnitAccess);
    }

    public void Read(Span<byte> destination, long offset) => OneBuffer.Read(this, destination, offset);

    public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess) =>
        OneBuffer.Write(this, source, offset, forceUnitAccess);

    public void Flush() => FileDescriptorIo.Sync(Fd);

    public void Unmap(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return;
        if (!SupportsUnmap)
        {
            ZeroOut(offset, length);
            return;
        }
        AlignedRangeIoctl(offset, length, _discardGranularity, Libc.BLKDISCARD, "BLKDISCARD", _zeroOut);
    }

    public void WriteZeroes(long offset, long length)
    {
        CheckRange(offset, length);
        if (length != 0) ZeroOut(offset, length);
    }

    /// <summary>Block devices have no holes that userspace can see: everything is mapped.</summary>
    public AllocationState GetAllocation(long offset, out long runLength)
    {
        if ((ulong)offset >= (ulong)SizeBytes) throw new ArgumentOutOfRangeException(nameof(offset));
        runLength = SizeBytes - offset;
        return AllocationState.Mapped;
    }

    /// <summary>BLKZEROOUT (sector-aligned); unaligned remainders by writing zeroes.</summary>
    private void ZeroOut(long offset, long length) =>
        AlignedRangeIoctl(offset, length, _sectorSize, Libc.BLKZEROOUT, "BLKZEROOUT", _writeZeroBuffers);

    /// <summary>
    /// Runs a range ioctl (BLKDISCARD, BLKZEROOUT) on the part of [offset, offset+length) that is
    /// aligned to <paramref name="align"/>; the unaligned edges, and the whole range when the
    /// device answers EOPNOTSUPP, go to <paramref name="fallback"/>.
    /// </summary>
    private void AlignedRangeIoctl(long offset, long length, long align, nuint request, string name, Action<long, long> fallback)
    {
        long start = (offset + align - 1) / align * align;
        long end = (offset + length) / align * align;
        if (end <= start)
        {
            fallback(offset, length);
            return;
        }
        if (start > offset) fallback(offset, start - offset);
        ulong* range = stackalloc ulong[2];
        range[0] = (ulong)start;
        range[1] = (ulong)(end - start);
        if (Ioctl(request, range, out int errno) < 0)
        {
            if (errno != Libc.EOPNOTSUPP) throw FileDescriptorIo.Error($"ioctl({name})", errno);
            fallback(start, end - start);
        }
        if (offset + length > end) fallback(end, offset + length - end);
    }

    private void WriteZeroBuffers(long offset, long length)
    {
        while (length > 0)
        {
            int n = (int)Math.Min(length, ZeroWriter.ChunkBytes);
            var v = new IoVec((nint)ZeroWriter.Zeroes, n);
            Write(new ReadOnlySpan<IoVec>(&v, 1), offset, forceUnitAccess: false);
            offset += n;
            length -= n;
        }
    }

    private int Ioctl(nuint request, void* argument, out int errno)
    {
        int fd = Fd;
        int r;
        do r = Libc.ioctl(fd, request, argument);
        while (r < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
        errno = r < 0 ? Marshal.GetLastPInvokeError() : 0;
        return r;
    }

    private bool IsAligned(ReadOnlySpan<IoVec> iov, long offset)
    {
        long mask = _sectorSize - 1;
        if ((offset & mask) != 0) return false;
        foreach (ref readonly var v in iov)
            if (((v.Base | v.Length) & mask) != 0) return false;
        return true;
    }

    private static byte* Bounce => t_bounce != null ? t_bounce : t_bounce = (byte*)NativeMemory.AlignedAlloc(BounceBytes, 4096);

    // The bounced paths need a sector-aligned device range: O_DIRECT cannot do less than a sector.
    private void BouncedRead(ReadOnlySpan<IoVec> destination, long offset)
    {
        RequireSectorAligned(offset, FileDescriptorIo.TotalLength(destination));
        byte* b = Bounce;
        long total = FileDescriptorIo.TotalLength(destination), done = 0;
        while (done < total)
        {
            int n = (int)Math.Min(total - done, BounceBytes);
            FileDescriptorIo.ReadFully(Fd, new Span<byte>(b, n), offset + done);
            IoVecs.CopyIn(destination, done, new ReadOnlySpan<byte>(b, n));
            done += n;
        }
    }

    private void BouncedWrite(ReadOnlySpan<IoVec> source, long offset, bool fua)
    {
        RequireSectorAligned(offset, FileDescriptorIo.TotalLength(source));
        byte* b = Bounce;
        long total = FileDescriptorIo.TotalLength(source), done = 0;
        while (done < total)
        {
            int n = (int)Math.Min(total - done, BounceBytes);
            IoVecs.CopyOut(source, done, new Span<byte>(b, n));
            FileDescriptorIo.WriteFully(Fd, new ReadOnlySpan<byte>(b, n), offset + done, fua);
            done += n;
        }
    }

    private void RequireSectorAligned(long offset, long length)
    {
        if (((offset | length) & (_sectorSize - 1)) != 0)
            throw new BackingStoreException($"O_DIRECT I/O at {offset}+{length} is not aligned to the {_sectorSize}-byte sector", EINVAL);
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > SizeBytes - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"range {offset}+{length} outside the store");
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
