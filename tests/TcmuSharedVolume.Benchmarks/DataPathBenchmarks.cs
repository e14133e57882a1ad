using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>
/// The whole userspace data path per command: the simulator queues READ(10)/WRITE(10) as the
/// kernel would, the ring drains it, <see cref="VolumePathExecutor"/> runs the real command set
/// (unit attention check, reservation gate, SBC) against a <see cref="SparseFileStore"/> on
/// tmpfs (/dev/shm, so the "disk" costs only the syscall and a memcpy), the ring completes it
/// and the simulator reaps it. Figures are per command (OperationsPerInvoke = queue depth).
/// <list type="bullet">
/// <item>Inline_*: drain → execute → complete → kick on the benchmark thread: the daemon's own
/// cost per command, the figure the "&lt; 2 µs per 4 KiB command at QD32" target is about.</item>
/// <item>Loop_*: through <see cref="RingEventLoop"/> (eventfd wake-up, epoll, worker hand-off,
/// coalesced kicks), 2 workers. The batch is announced with one eventfd write: the kernel's
/// uio_event_notify per command is the initiator side's cost, not the daemon's, and an eventfd
/// write per command here would bill a syscall per command to the loop.</item>
/// <item>Store_*: only the preadv/pwritev of the same size on the same file, to subtract: what is
/// left of Inline_* is ring, command set, gate and the simulator's own copying.</item>
/// </list>
/// QD32 here means a batch of 32 commands queued before the ring is drained.
/// The volume is 256 MiB, fully written first, 512-byte logical blocks; random 4 KiB offsets are aligned.
/// </summary>
[MemoryDiagnoser]
public unsafe class DataPathBenchmarks
{
    private const int LogicalBlock = 512;
    private const long VolumeBytes = 256L << 20;
    private const ushort Blocks4K = 4096 / LogicalBlock;
    private const ushort Blocks1M = (1 << 20) / LogicalBlock;
    private const int RandomOffsets = 1 << 14;

    private string _directory = null!;
    private Volume _volume = null!;
    private uint[] _randomLba = null!;
    private int _next;
    private uint _sequentialLba;
    private readonly byte[] _read10 = [0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private readonly byte[] _write10 = [0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private readonly byte[] _dataOut4K = new byte[4096];

    private RingSimulator _sim = null!;
    private TcmuRing _ring = null!;
    private InlineConsumer _inline = null!;

    private RingSimulator _loopSim = null!;
    private TcmuRing _loopRing = null!;
    private EventFd _loopFd = null!;
    private RingEventLoop _loop = null!;
    private long _loopSubmitted;
    private bool _batching;

    private IoVec* _storeIov;

    private sealed class SimulatorKick(RingSimulator sim) : IRingNotifier
    {
        public void Kick() => sim.Kick();
    }

    private sealed class InlineConsumer(TcmuRing ring, ICommandExecutor executor) : IRingConsumer
    {
        public long NotGood;

        public void OnCommand(ScsiCommand command)
        {
            executor.Execute(command);
            if (command.Status != ScsiStatus.Good) NotGood++;
            ring.Complete(command);
        }

        public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) { }
    }

    [GlobalSetup]
    public void Setup()
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        _directory = Path.Combine(root, $"tsv-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(_directory);
        string image = Path.Combine(_directory, "vol.img");
        var random = new Random(42);
        using (var f = new FileStream(image, FileMode.Create, FileAccess.Write))
        {
            // Written, not sparse: reads must copy real pages, not map holes.
            var chunk = new byte[1 << 20];
            for (long done = 0; done < VolumeBytes; done += chunk.Length)
            {
                random.NextBytes(chunk);
                f.Write(chunk);
            }
        }
        var store = BackingStores.Open(image);
        _volume = new Volume(image, store, LogicalBlock, VolumeIdentity.FromBackingPath(image), new InMemoryReservationStore());
        var nexus = new ItNexus(new InitiatorPort(ProtocolId.Iscsi, "iqn.2026-11.bench:node1", "400001370000"),
            new TargetPort(ProtocolId.Iscsi, "iqn.2026-11.bench:target,t,0x0001", 1));
        var path = _volume.AddPath("user_1/bench", nexus);
        var executor = new VolumePathExecutor(path);

        _randomLba = new uint[RandomOffsets];
        uint slots = (uint)(VolumeBytes / 4096);
        for (int i = 0; i < _randomLba.Length; i++) _randomLba[i] = (uint)random.Next((int)slots) * Blocks4K;
        random.NextBytes(_dataOut4K);

        // 1 MiB ring, 2 MiB data area: room for QD32 × 4 KiB and for one 1 MiB command.
        _sim = new RingSimulator(cmdrSize: 1024 * 1024 - 128, dataBlocks: 512, maxCommands: 128, recordCompletions: false);
        _ring = new TcmuRing(_sim.Map, _sim.MapLength, new SimulatorKick(_sim), "bench-inline");
        _inline = new InlineConsumer(_ring, executor);

        _loopSim = new RingSimulator(cmdrSize: 1024 * 1024 - 128, dataBlocks: 512, maxCommands: 128, recordCompletions: false);
        _loopRing = new TcmuRing(_loopSim.Map, _loopSim.MapLength, new SimulatorKick(_loopSim), "bench-loop");
        _loopFd = new EventFd();
        _loopSim.Notified += () =>
        {
            if (!_batching) _loopFd.Signal();
        };
        _loop = new RingEventLoop(workerCount: 2);
        _loop.Add(_loopRing, _loopFd, executor);

        _storeIov = (IoVec*)NativeMemory.Alloc((nuint)sizeof(IoVec));
        *_storeIov = new IoVec((nint)NativeMemory.AlignedAlloc(4096, 4096), 4096);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _loop.Dispose();
        _loopRing.Dispose();
        _loopFd.Dispose();
        _loopSim.Dispose();
        _ring.Dispose();
        _sim.Dispose();
        NativeMemory.AlignedFree((void*)_storeIov->Base);
        NativeMemory.Free(_storeIov);
        if (_inline.NotGood != 0)
            Console.WriteLine($"// WARNING: {_inline.NotGood} commands did not complete GOOD; the figures are not valid");
        _volume.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    // ------------------------------------------------------------------ inline

    [Benchmark(OperationsPerInvoke = 1)]
    public void Inline_RandRead4K_QD1() => Inline(random: true, write: false, Blocks4K, 1);

    [Benchmark(OperationsPerInvoke = 32)]
    public void Inline_RandRead4K_QD32() => Inline(random: true, write: false, Blocks4K, 32);

    [Benchmark(OperationsPerInvoke = 1)]
    public void Inline_RandWrite4K_QD1() => Inline(random: true, write: true, Blocks4K, 1);

    [Benchmark(OperationsPerInvoke = 32)]
    public void Inline_RandWrite4K_QD32() => Inline(random: true, write: true, Blocks4K, 32);

    [Benchmark(OperationsPerInvoke = 1)]
    public void Inline_SeqRead1M_QD1() => Inline(random: false, write: false, Blocks1M, 1);

    // ------------------------------------------------------------------ through the event loop

    [Benchmark(OperationsPerInvoke = 1)]
    public void Loop_RandRead4K_QD1() => ThroughLoop(random: true, write: false, Blocks4K, 1);

    [Benchmark(OperationsPerInvoke = 32)]
    public void Loop_RandRead4K_QD32() => ThroughLoop(random: true, write: false, Blocks4K, 32);

    [Benchmark(OperationsPerInvoke = 1)]
    public void Loop_RandWrite4K_QD1() => ThroughLoop(random: true, write: true, Blocks4K, 1);

    [Benchmark(OperationsPerInvoke = 32)]
    public void Loop_RandWrite4K_QD32() => ThroughLoop(random: true, write: true, Blocks4K, 32);

    [Benchmark(OperationsPerInvoke = 1)]
    public void Loop_SeqRead1M_QD1() => ThroughLoop(random: false, write: false, Blocks1M, 1);

    // ------------------------------------------------------------------ the syscalls alone

    [Benchmark(OperationsPerInvoke = 32)]
    public void Store_RandRead4K()
    {
        var iov = new ReadOnlySpan<IoVec>(_storeIov, 1);
        for (int i = 0; i < 32; i++) _volume.Store.Read(iov, (long)NextLba(true, Blocks4K) * LogicalBlock);
    }

    [Benchmark(OperationsPerInvoke = 32)]
    public void Store_RandWrite4K()
    {
        var iov = new ReadOnlySpan<IoVec>(_storeIov, 1);
        for (int i = 0; i < 32; i++) _volume.Store.Write(iov, (long)NextLba(true, Blocks4K) * LogicalBlock, forceUnitAccess: false);
    }

    private uint NextLba(bool random, ushort blocks)
    {
        if (random)
        {
            uint lba = _randomLba[_next];
            _next = (_next + 1) & (RandomOffsets - 1);
            return lba;
        }
        uint seq = _sequentialLba;
        _sequentialLba = (uint)((seq + blocks) % (VolumeBytes / LogicalBlock));
        return seq;
    }

    private void Submit(RingSimulator sim, bool random, bool write, ushort blocks)
    {
        var cdb = write ? _write10 : _read10;
        BinaryPrimitives.WriteUInt32BigEndian(cdb.AsSpan(2), NextLba(random, blocks));
        BinaryPrimitives.WriteUInt16BigEndian(cdb.AsSpan(7), blocks);
        bool queued = write
            ? sim.TrySubmit(cdb, _dataOut4K.AsSpan(0, blocks * LogicalBlock), 0, out _)
            : sim.TrySubmit(cdb, default, blocks * LogicalBlock, out _);
        if (!queued) throw new InvalidOperationException("simulated ring full");
    }

    private void Inline(bool random, bool write, ushort blocks, int depth)
    {
        for (int i = 0; i < depth; i++) Submit(_sim, random, write, blocks);
        _ring.Drain(_inline);
        _ring.Flush();
    }

    private void ThroughLoop(bool random, bool write, ushort blocks, int depth)
    {
        _batching = true;
        for (int i = 0; i < depth; i++) Submit(_loopSim, random, write, blocks);
        _batching = false;
        _loopFd.Signal();
        _loopSubmitted += depth;
        if (!_loopSim.WaitForCompletions(_loopSubmitted, TimeSpan.FromSeconds(10)))
            throw new InvalidOperationException("the event loop did not complete the batch");
    }
}
