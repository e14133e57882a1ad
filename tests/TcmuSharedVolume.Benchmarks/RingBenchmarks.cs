using BenchmarkDotNet.Attributes;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>
/// The ring layer alone: the simulator plays the kernel, the executor answers GOOD at once.
/// One operation = one 4 KiB READ(10) queued, drained, executed, completed and reaped.
/// "Inline" runs everything on the benchmark thread (the ring's own cost); "Loop" goes through
/// RingEventLoop (epoll wakeup, worker hand-off, coalesced kicks). The lead adds the real
/// dispatcher and a sparse-file backend later.
/// </summary>
[MemoryDiagnoser]
public unsafe class RingBenchmarks
{
    private const int BlockCount = 8;
    private static readonly byte[] Read4K = [0x28, 0, 0, 0, 0, 0, 0, 0, BlockCount, 0];

    private RingSimulator _sim = null!;
    private TcmuRing _ring = null!;
    private InlineConsumer _inline = null!;
    private RingSimulator _loopSim = null!;
    private TcmuRing _loopRing = null!;
    private EventFd _loopFd = null!;
    private RingEventLoop _loop = null!;
    private long _loopReaped;

    private sealed class SimulatorKick(RingSimulator sim) : IRingNotifier
    {
        public void Kick() => sim.Kick();
    }

    private sealed class GoodExecutor : ICommandExecutor
    {
        public bool Execute(ScsiCommand command)
        {
            command.Good();
            return true;
        }
        public void TaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) { }
    }

    private sealed class InlineConsumer(TcmuRing ring, ICommandExecutor executor) : IRingConsumer
    {
        public void OnCommand(ScsiCommand command)
        {
            executor.Execute(command);
            ring.Complete(command);
        }

        public void OnTaskManagement(TmrType type, ReadOnlySpan<ushort> commandIds) { }
    }

    [GlobalSetup]
    public void Setup()
    {
        _sim = new RingSimulator(cmdrSize: 1024 * 1024 - 128, dataBlocks: 64, maxCommands: 128, recordCompletions: false);
        _ring = new TcmuRing(_sim.Map, _sim.MapLength, new SimulatorKick(_sim), "bench-inline");
        _inline = new InlineConsumer(_ring, new GoodExecutor());

        _loopSim = new RingSimulator(cmdrSize: 1024 * 1024 - 128, dataBlocks: 64, maxCommands: 128, recordCompletions: false);
        _loopRing = new TcmuRing(_loopSim.Map, _loopSim.MapLength, new SimulatorKick(_loopSim), "bench-loop");
        _loopFd = new EventFd();
        _loopSim.Notified += _loopFd.Signal;
        _loop = new RingEventLoop(workerCount: 2);
        _loop.Add(_loopRing, _loopFd, new GoodExecutor());
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
    }

    [Benchmark(OperationsPerInvoke = 1)]
    public void Inline_QD1() => Inline(1);

    [Benchmark(OperationsPerInvoke = 32)]
    public void Inline_QD32() => Inline(32);

    [Benchmark(OperationsPerInvoke = 1)]
    public void Loop_QD1() => ThroughLoop(1);

    [Benchmark(OperationsPerInvoke = 32)]
    public void Loop_QD32() => ThroughLoop(32);

    private void Inline(int depth)
    {
        for (int i = 0; i < depth; i++)
            _sim.TrySubmit(Read4K, default, 4096, out _);
        _ring.Drain(_inline);
        _ring.Flush();
    }

    private void ThroughLoop(int depth)
    {
        for (int i = 0; i < depth; i++)
            _loopSim.TrySubmit(Read4K, default, 4096, out _);
        _loopReaped += depth;
        if (!_loopSim.WaitForCompletions(_loopReaped, TimeSpan.FromSeconds(10)))
            throw new InvalidOperationException("the event loop did not complete the batch");
    }
}
