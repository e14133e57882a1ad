using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Scsi;

/// <summary>
/// A command's data in native memory, split into several separately allocated segments of
/// uneven sizes, like the TCMU data area hands them over: exercises scatter/gather everywhere.
/// </summary>
public sealed unsafe class NativeData : IDisposable
{
    private readonly IoVec* _iov;
    private readonly int _count;

    public NativeData(long length, int segments = 3)
    {
        Length = length;
        segments = (int)Math.Max(1, Math.Min(segments, Math.Max(1, length)));
        _count = segments;
        _iov = (IoVec*)NativeMemory.AllocZeroed((nuint)(sizeof(IoVec) * segments));
        long left = length;
        long baseSize = length / segments;
        for (int i = 0; i < segments; i++)
        {
            // Uneven sizes, none aligned to a block: the last segment takes the rest.
            long size = i == segments - 1 ? left : Math.Clamp(baseSize + (i % 2 == 0 ? 7 : -3), 1, left - (segments - 1 - i));
            var p = NativeMemory.AllocZeroed((nuint)Math.Max(size, 1));
            _iov[i] = new IoVec((nint)p, (nint)size);
            left -= size;
        }
    }

    public static NativeData From(ReadOnlySpan<byte> bytes, int segments = 3)
    {
        var d = new NativeData(bytes.Length, segments);
        d.Buffer.CopyFrom(0, bytes);
        return d;
    }

    public long Length { get; }

    public DataBuffer Buffer => new(_iov, _count, Length);

    public byte[] ToArray()
    {
        var a = new byte[Length];
        Buffer.CopyTo(0, a);
        return a;
    }

    public void Dispose()
    {
        for (int i = 0; i < _count; i++) NativeMemory.Free((void*)_iov[i].Base);
        NativeMemory.Free(_iov);
    }
}

/// <summary>What a command produced, copied out so the native buffer can go.</summary>
public sealed record Result(ScsiStatus Status, byte[] Sense, byte[] DataIn, long DataInLength)
{
    public SenseCode Code => SenseData.Parse(Sense);

    public void AssertGood()
    {
        Assert.True(Status == ScsiStatus.Good, $"expected GOOD, got {Status} {Code}");
    }

    public void AssertCheck(SenseCode expected)
    {
        Assert.Equal(ScsiStatus.CheckCondition, Status);
        Assert.Equal(expected, Code);
    }

    /// <summary>Sense-key specific field pointer of fixed-format sense: (C/D, byte, bit or -1).</summary>
    public (bool InCdb, int Byte, int Bit) FieldPointer
    {
        get
        {
            Assert.Equal(0x70, Sense[0] & 0x7F);
            Assert.True((Sense[15] & 0x80) != 0, "SKSV not set");
            int bit = (Sense[15] & 0x08) != 0 ? Sense[15] & 0x07 : -1;
            return ((Sense[15] & 0x40) != 0, BinaryPrimitives.ReadUInt16BigEndian(Sense.AsSpan(16)), bit);
        }
    }

    /// <summary>INFORMATION of fixed or descriptor sense.</summary>
    public ulong Information
    {
        get
        {
            if ((Sense[0] & 0x7F) == 0x70)
            {
                Assert.True((Sense[0] & 0x80) != 0, "VALID not set");
                return BinaryPrimitives.ReadUInt32BigEndian(Sense.AsSpan(3));
            }
            for (int at = 8; at < Sense.Length - 1; at += 2 + Sense[at + 1])
                if (Sense[at] == 0x00) return BinaryPrimitives.ReadUInt64BigEndian(Sense.AsSpan(at + 4));
            throw new Xunit.Sdk.XunitException("no information descriptor");
        }
    }
}

/// <summary>Volumes over real sparse files in a temp directory, with paths bound to nexuses.</summary>
public sealed class ScsiFixture : IDisposable
{
    public const int BlockSize = 512;
    private readonly List<Volume> _volumes = [];

    public ScsiFixture()
    {
        Directory = Path.Combine(Path.GetTempPath(), "tsv-scsi-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public static ItNexus Nexus(string initiator, ushort rtpi) =>
        new(new InitiatorPort(ProtocolId.Iscsi, initiator),
            new TargetPort(ProtocolId.Iscsi, $"iqn.2024-01.test:tgt,t,0x{rtpi:x4}", rtpi));

    public Volume CreateVolume(long sizeBytes = 4 << 20, string name = "vol", int blockSize = BlockSize, Func<IBackingStore, IBackingStore>? wrap = null)
    {
        string path = Path.Combine(Directory, name + ".img");
        IBackingStore store = SparseFileStore.Open(path, new BackingStoreOptions { CreateSizeBytes = sizeBytes });
        if (wrap is not null) store = wrap(store);
        var volume = new Volume(path, store, blockSize, VolumeIdentity.FromBackingPath(path), new InMemoryReservationStore());
        _volumes.Add(volume);
        return volume;
    }

    public static Result Run(VolumePath path, ReadOnlySpan<byte> cdb, NativeData? data = null, bool? descriptorSense = null)
    {
        var command = new ScsiCommand();
        command.SetCdb(cdb);
        command.Data = data?.Buffer ?? DataBuffer.Empty;
        command.DescriptorSense = descriptorSense ?? path.Volume.DescriptorSense;
        CommandSet.Execute(path, command);
        byte[] dataIn = data?.ToArray() ?? [];
        long n = command.DataInLength < 0 ? dataIn.Length : command.DataInLength;
        return new Result(command.Status, command.Sense.ToArray(), dataIn.AsSpan(0, (int)Math.Min(n, dataIn.Length)).ToArray(), command.DataInLength);
    }

    /// <summary>Runs a Data-In command with a buffer of <paramref name="length"/> bytes.</summary>
    public static Result In(VolumePath path, ReadOnlySpan<byte> cdb, int length, int segments = 3)
    {
        using var data = new NativeData(length, segments);
        return Run(path, cdb, data);
    }

    /// <summary>Runs a Data-Out command with <paramref name="bytes"/>.</summary>
    public static Result Out(VolumePath path, ReadOnlySpan<byte> cdb, ReadOnlySpan<byte> bytes, int segments = 3)
    {
        using var data = NativeData.From(bytes, segments);
        return Run(path, cdb, data);
    }

    /// <summary>
    /// Runs a command as a transport that lets commands finish later does (TCMU's event loop):
    /// with a <see cref="ScsiCommand.Completion"/>, waiting for it when the command went to a
    /// store that finishes on its own thread. Later: whether it did.
    /// </summary>
    public static (Result Result, bool Later) RunLater(VolumePath path, ReadOnlySpan<byte> cdb, NativeData? data = null)
    {
        var command = new ScsiCommand();
        command.SetCdb(cdb);
        command.Data = data?.Buffer ?? DataBuffer.Empty;
        command.DescriptorSense = path.Volume.DescriptorSense;
        var done = new LaterCompletion();
        command.Completion = done;
        bool later = !CommandSet.Execute(path, command);
        if (later) Assert.True(done.Wait(TimeSpan.FromSeconds(60)), "the store never finished the command");
        else Assert.Null(done.FinishedOn);
        byte[] dataIn = data?.ToArray() ?? [];
        long n = command.DataInLength < 0 ? dataIn.Length : command.DataInLength;
        return (new Result(command.Status, command.Sense.ToArray(), dataIn.AsSpan(0, (int)Math.Min(n, dataIn.Length)).ToArray(), command.DataInLength), later);
    }

    public static (Result Result, bool Later) InLater(VolumePath path, ReadOnlySpan<byte> cdb, int length, int segments = 3)
    {
        using var data = new NativeData(length, segments);
        return RunLater(path, cdb, data);
    }

    public static (Result Result, bool Later) OutLater(VolumePath path, ReadOnlySpan<byte> cdb, ReadOnlySpan<byte> bytes, int segments = 3)
    {
        using var data = NativeData.From(bytes, segments);
        return RunLater(path, cdb, data);
    }

    public static unsafe long AllocatedBytes(string file)
    {
        int fd = Libc.open(file, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        Assert.True(fd >= 0);
        try
        {
            StatBuffer st;
            Assert.Equal(0, Libc.fstat(fd, &st));
            return st.Blocks * 512;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    public void Dispose()
    {
        foreach (var v in _volumes) v.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>CDB builders, big-endian, standard layouts.</summary>
public static class Cdb
{
    public static byte[] Read10(uint lba, ushort blocks, byte flags = 0) => Rw10(OperationCode.Read10, lba, blocks, flags);
    public static byte[] Write10(uint lba, ushort blocks, byte flags = 0) => Rw10(OperationCode.Write10, lba, blocks, flags);

    public static byte[] Rw10(byte op, uint lba, ushort blocks, byte flags = 0)
    {
        var c = new byte[10];
        c[0] = op;
        c[1] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), blocks);
        return c;
    }

    public static byte[] Rw12(byte op, uint lba, uint blocks, byte flags = 0)
    {
        var c = new byte[12];
        c[0] = op;
        c[1] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), blocks);
        return c;
    }

    public static byte[] Rw16(byte op, ulong lba, uint blocks, byte flags = 0)
    {
        var c = new byte[16];
        c[0] = op;
        c[1] = flags;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), blocks);
        return c;
    }

    public static byte[] Inquiry(bool evpd, byte page, ushort allocation)
    {
        var c = new byte[6];
        c[0] = OperationCode.Inquiry;
        c[1] = (byte)(evpd ? 1 : 0);
        c[2] = page;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(3), allocation);
        return c;
    }

    public static byte[] ModeSense6(byte pageByte, byte allocation = 255, bool dbd = false, byte subpage = 0) =>
        [OperationCode.ModeSense6, (byte)(dbd ? 0x08 : 0), pageByte, subpage, allocation, 0];

    public static byte[] ModeSense10(byte pageByte, ushort allocation = 1024, bool dbd = false, bool llbaa = false)
    {
        var c = new byte[10];
        c[0] = OperationCode.ModeSense10;
        c[1] = (byte)((dbd ? 0x08 : 0) | (llbaa ? 0x10 : 0));
        c[2] = pageByte;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), allocation);
        return c;
    }

    public static byte[] ModeSelect10(ushort length, bool pf = true, bool sp = false)
    {
        var c = new byte[10];
        c[0] = OperationCode.ModeSelect10;
        c[1] = (byte)((pf ? 0x10 : 0) | (sp ? 0x01 : 0));
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), length);
        return c;
    }

    public static byte[] ServiceActionIn16(byte sa, ulong lba, uint allocation)
    {
        var c = new byte[16];
        c[0] = OperationCode.ServiceActionIn16;
        c[1] = sa;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(10), allocation);
        return c;
    }

    public static byte[] Rsoc(int options, byte op = 0, ushort sa = 0, uint allocation = 4096, bool rctd = false)
    {
        var c = new byte[12];
        c[0] = OperationCode.MaintenanceIn;
        c[1] = OperationCode.ServiceActionReportSupportedOperationCodes;
        c[2] = (byte)((rctd ? 0x80 : 0) | options);
        c[3] = op;
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(4), sa);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(6), allocation);
        return c;
    }

    public static byte[] Unmap(ushort length, bool anchor = false)
    {
        var c = new byte[10];
        c[0] = OperationCode.Unmap;
        c[1] = (byte)(anchor ? 1 : 0);
        BinaryPrimitives.WriteUInt16BigEndian(c.AsSpan(7), length);
        return c;
    }

    public static byte[] UnmapList(params (ulong Lba, uint Blocks)[] descriptors)
    {
        var p = new byte[8 + 16 * descriptors.Length];
        BinaryPrimitives.WriteUInt16BigEndian(p, (ushort)(p.Length - 2));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)(16 * descriptors.Length));
        for (int i = 0; i < descriptors.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(p.AsSpan(8 + 16 * i), descriptors[i].Lba);
            BinaryPrimitives.WriteUInt32BigEndian(p.AsSpan(16 + 16 * i), descriptors[i].Blocks);
        }
        return p;
    }

    public static byte[] CompareAndWrite(ulong lba, byte blocks, byte flags = 0)
    {
        var c = new byte[16];
        c[0] = OperationCode.CompareAndWrite;
        c[1] = flags;
        BinaryPrimitives.WriteUInt64BigEndian(c.AsSpan(2), lba);
        c[13] = blocks;
        return c;
    }
}

/// <summary>Wraps a store; fails reads, writes or flushes on demand, records FUA flags, and runs
/// <see cref="BeforeWrite"/> before each change of the medium (a slow store, say).</summary>
public sealed class FaultStore(IBackingStore inner) : IBackingStore
{
    public int? ReadErrno { get; set; }
    public int? WriteErrno { get; set; }
    public int? FlushErrno { get; set; }
    public bool? Unmappable { get; set; }
    public int? PhysicalBlockSizeOverride { get; set; }
    public Action? BeforeWrite { get; set; }
    public long? MaxUnmapBytesOverride { get; set; }
    public int? UnmapGranularityOverride { get; set; }
    public int Flushes;
    public int FuaWrites;
    public int PlainWrites;

    public long SizeBytes => inner.SizeBytes;
    public bool SupportsUnmap => Unmappable ?? inner.SupportsUnmap;
    public bool UnmapReadsZeroes => SupportsUnmap && inner.UnmapReadsZeroes;
    public int UnmapGranularity => UnmapGranularityOverride ?? inner.UnmapGranularity;
    public int PhysicalBlockSize => PhysicalBlockSizeOverride ?? inner.PhysicalBlockSize;
    public long MaxUnmapBytes => MaxUnmapBytesOverride ?? inner.MaxUnmapBytes;

    private void FailRead() { if (ReadErrno is { } e) throw new BackingStoreException("injected read error", e); }
    private void FailWrite(bool fua)
    {
        BeforeWrite?.Invoke();
        if (WriteErrno is { } e) throw new BackingStoreException("injected write error", e);
        if (fua) Interlocked.Increment(ref FuaWrites);
        else Interlocked.Increment(ref PlainWrites);
    }

    public void Read(ReadOnlySpan<IoVec> destination, long offset) { FailRead(); inner.Read(destination, offset); }
    public void Write(ReadOnlySpan<IoVec> source, long offset, bool forceUnitAccess) { FailWrite(forceUnitAccess); inner.Write(source, offset, forceUnitAccess); }
    public void Read(Span<byte> destination, long offset) { FailRead(); inner.Read(destination, offset); }
    public void Write(ReadOnlySpan<byte> source, long offset, bool forceUnitAccess) { FailWrite(forceUnitAccess); inner.Write(source, offset, forceUnitAccess); }

    public void Flush()
    {
        if (FlushErrno is { } e) throw new BackingStoreException("injected flush error", e);
        Interlocked.Increment(ref Flushes);
        inner.Flush();
    }

    public void Unmap(long offset, long length) { FailWrite(false); inner.Unmap(offset, length); }
    public void WriteZeroes(long offset, long length) { FailWrite(false); inner.WriteZeroes(offset, length); }
    public AllocationState GetAllocation(long offset, out long runLength) { FailRead(); return inner.GetAllocation(offset, out runLength); }
    public void Dispose() => inner.Dispose();
}

/// <summary>The transport's side of a command that finishes later: where and when it finished.</summary>
public sealed class LaterCompletion : ICommandCompletion
{
    // A monitor, not a ManualResetEventSlim: that one allocates its lock the first time a Wait
    // has to block, which would count against the no-allocation tests whenever it happens.
    private readonly object _gate = new();
    private bool _done;

    /// <summary>The thread that finished the command (the store's).</summary>
    public Thread? FinishedOn { get; private set; }

    /// <summary><see cref="GC.GetAllocatedBytesForCurrentThread"/> on that thread as it finished.</summary>
    public long AllocatedOnThatThread { get; private set; }

    /// <summary>How many commands this completion finished.</summary>
    public int Count => Volatile.Read(ref _count);

    private int _count;

    public void Finished(ScsiCommand command)
    {
        FinishedOn = Thread.CurrentThread;
        AllocatedOnThatThread = GC.GetAllocatedBytesForCurrentThread();
        Interlocked.Increment(ref _count);
        lock (_gate)
        {
            _done = true;
            Monitor.PulseAll(_gate);
        }
    }

    public bool Wait(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        lock (_gate)
        {
            while (!_done)
            {
                long left = deadline - Environment.TickCount64;
                if (left <= 0) return false;
                Monitor.Wait(_gate, (int)left);
            }
            return true;
        }
    }

    /// <summary>For the next command (one at a time).</summary>
    public void Reset()
    {
        lock (_gate) _done = false;
    }
}
