using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>
/// 4 KiB random I/O at queue depth 1 on a Ceph RBD image of the one-node cluster of
/// scripts/ceph/start.sh (memstore OSD on loopback, so a request costs the librbd/OSD round
/// trip and no disk). Compare with bare librbd in the same minute:
/// <c>rbd -c CONF bench --rbd-cache=false --io-type write --io-size 4K --io-threads 1
/// --io-total 16M --io-pattern rand rbd/tsv-rbd-bench</c> (and <c>--io-type read</c>).
/// <list type="bullet">
/// <item>Store_*: <see cref="RbdStore"/> alone: one rbd_aio_* request and the wait for its callback.</item>
/// <item>Command_*: READ(10)/WRITE(10) through CommandSet on a path of a Volume over the store
/// (unit attention check, reservation gate, SBC): what the daemon adds before the ring.</item>
/// </list>
/// The random offsets are 4 KiB aligned over the first 64 MiB of the image, written in full first.
/// </summary>
[MemoryDiagnoser]
public unsafe class RbdStoreBenchmarks
{
    private const string Image = "tsv-rbd-bench";
    private const long WorkingSet = 64L << 20;
    private const int RandomOffsets = 1 << 14;

    private RbdStore _store = null!;
    private Volume _volume = null!;
    private VolumePath _path = null!;
    private ScsiCommand _command = null!;
    private IoVec* _iov;
    private long[] _offsets = null!;
    private int _next;
    private readonly byte[] _read10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0];
    private readonly byte[] _write10 = [0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0];

    [GlobalSetup]
    public void Setup()
    {
        string conf = Ceph.Start();
        Ceph.EnsureImage(conf, Image, "256M");
        var location = RbdLocation.Create("rbd", Image, conf);
        _store = RbdStore.Open(location);

        _iov = (IoVec*)NativeMemory.Alloc((nuint)sizeof(IoVec));
        var fill = (byte*)NativeMemory.AlignedAlloc(1 << 20, 4096);
        new Random(1).NextBytes(new Span<byte>(fill, 1 << 20));
        for (long at = 0; at < WorkingSet; at += 1 << 20)
            _store.Write(new ReadOnlySpan<byte>(fill, 1 << 20), at, forceUnitAccess: false);
        NativeMemory.AlignedFree(fill);
        *_iov = new IoVec((nint)NativeMemory.AlignedAlloc(4096, 4096), 4096);

        var random = new Random(2);
        _offsets = new long[RandomOffsets];
        for (int i = 0; i < _offsets.Length; i++) _offsets[i] = random.NextInt64(WorkingSet / 4096) * 4096;

        _volume = new Volume(location.Path, _store, 512, VolumeIdentity.FromBackingPath(location.Path), new InMemoryReservationStore());
        _path = _volume.AddPath("bench", new ItNexus(new InitiatorPort(ProtocolId.Iscsi, "iqn.2024-01.bench:init"),
            new TargetPort(ProtocolId.Iscsi, "iqn.2024-01.bench:tgt,t,0x0001", 1)));
        _command = new ScsiCommand();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _volume.Dispose(); // and the store
        NativeMemory.AlignedFree((void*)_iov->Base);
        NativeMemory.Free(_iov);
    }

    private long NextOffset() => _offsets[_next++ & (RandomOffsets - 1)];

    [Benchmark]
    public void Store_RandomRead4K_QD1() => _store.Read(new ReadOnlySpan<IoVec>(_iov, 1), NextOffset());

    [Benchmark]
    public void Store_RandomWrite4K_QD1() => _store.Write(new ReadOnlySpan<IoVec>(_iov, 1), NextOffset(), forceUnitAccess: false);

    [Benchmark]
    public void Store_RandomWrite4K_Fua_QD1() => _store.Write(new ReadOnlySpan<IoVec>(_iov, 1), NextOffset(), forceUnitAccess: true);

    [Benchmark]
    public void Command_RandomRead4K_QD1() => Execute(_read10);

    [Benchmark]
    public void Command_RandomWrite4K_QD1() => Execute(_write10);

    private void Execute(byte[] cdb)
    {
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), (uint)(NextOffset() / 512));
        _command.Reset();
        _command.SetCdb(cdb);
        _command.Data = new DataBuffer(_iov, 1, 4096);
        CommandSet.Execute(_path, _command);
        if (_command.Status != ScsiStatus.Good) throw new InvalidOperationException($"status {_command.Status}");
    }
}
