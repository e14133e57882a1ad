using System.Diagnostics;
using System.Globalization;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Linux.Tcmu;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Simulation;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>
/// <c>rbd-ring</c> mode of the benchmark program: 4 KiB random READ(10) or WRITE(10) at a fixed
/// queue depth through the daemon's real data path on an RBD image, for
/// <c>scripts/bench/rbd-vs-librbd.sh</c>, which runs it in turn with <c>rbd bench</c> (bare
/// librbd) on the same image. The path is what the daemon builds for an RBD backstore: an
/// <see cref="RbdStore"/>, the shared reservation table in RADOS (<see cref="RbdReservationStore"/>),
/// a <see cref="Volume"/> and one path, served by a <see cref="RingEventLoop"/> over a simulated
/// TCMU ring. The "kernel" (<see cref="QueueKeeper"/>) keeps the queue depth: every kick reaps
/// what completed and queues as many new commands at once, on the kicking thread, as
/// <c>rbd bench</c>'s own thread issues the next request when one completes.
/// <para>Counts only the <c>--ops</c> commands after the warm-up: at least <c>--warmup</c>
/// commands and <c>--warmup-seconds</c> (JIT, the first client threads). The seconds matter:
/// the runtime recompiles the hot methods optimized (tier 1) only after they have run for a
/// while, on a background thread; a warm-up of a fixed 1000 commands (under a second at queue
/// depth 32) left that work, and the slower code before it, in the measured window: 8 % fewer
/// IOPS than in steady state, which a daemon that runs for days never sees. It counts every byte the process allocated meanwhile, on any thread, and the CPU
/// time the process used meanwhile (librbd's threads and the "kernel" included).</para>
/// </summary>
internal static unsafe class RbdRingBenchmark
{
    private const int LogicalBlock = 512;
    private const int TransferBytes = 4096;

    public static int Run(string[] args)
    {
        string? conf = null, image = null, pool = "rbd", type = "read";
        int depth = 1, workers = 0, perRing = 0;
        long ops = 10_000, warmup = -1;
        double warmupSeconds = 2;
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--conf": conf = Value(); break;
                case "--pool": pool = Value(); break;
                case "--image": image = Value(); break;
                case "--type": type = Value(); break;
                case "--qd": depth = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--ops": ops = long.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = long.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--warmup-seconds": warmupSeconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--workers": workers = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--max-per-ring": perRing = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (conf is null || image is null || type is not ("read" or "write") || depth is < 1 or > 128 || ops < 1 || warmupSeconds < 0)
        {
            Console.Error.WriteLine("usage: rbd-ring --conf CEPH_CONF --image IMAGE [--pool rbd] [--type read|write] [--qd 1..128] [--ops N] [--warmup N] [--warmup-seconds S] [--workers N]");
            return 2;
        }
        if (warmup < 0) warmup = Math.Max(1000, 20L * depth);

        var location = RbdLocation.Create(pool, image, conf);
        var store = RbdStore.Open(location);
        var identity = RbdReservationStore.EstablishIdentity(store, VolumeIdentity.NewRandom(Guid.NewGuid()));
        using var volume = new Volume(location.Path, store, LogicalBlock, identity, new RbdReservationStore(store));
        var nexus = new ItNexus(new InitiatorPort(ProtocolId.Iscsi, "iqn.2026-12.bench:node1", "400001370000"),
            new TargetPort(ProtocolId.Iscsi, "iqn.2026-12.bench:target,t,0x0001", 1));
        var path = volume.AddPath("user_1/bench-rbd", nexus);

        // Room for 128 commands of 4 KiB: ring entries of ~140 bytes, one data block each.
        using var sim = new RingSimulator(cmdrSize: 256 * 1024 - 128, dataBlocks: 256, maxCommands: 128, recordCompletions: false);
        using var source = new EventFd();
        var kernel = new QueueKeeper(sim, source, write: type == "write", depth, warmup, warmupSeconds, ops, store.SizeBytes / TransferBytes);
        var ring = new TcmuRing(sim.Map, sim.MapLength, kernel, "bench-rbd");
        var loop = new RingEventLoop(workers, perRing);
        try
        {
            loop.Add(ring, source, new VolumePathExecutor(path));
            kernel.Start();
            // Polled, not waited on: a waiter woken by every reap would bill a thread switch per
            // command to the daemon. The kernel stand-in times the window itself.
            var deadline = Stopwatch.GetTimestamp() + 600 * Stopwatch.Frequency;
            while (!kernel.Warm) Poll(deadline);
            long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            int gcBefore = GC.CollectionCount(0);
            var process = Process.GetCurrentProcess();
            var cpuBefore = process.TotalProcessorTime;
            while (!kernel.Finished) Poll(deadline);
            process.Refresh();
            double cpuMicroseconds = (process.TotalProcessorTime - cpuBefore).TotalMicroseconds;
            long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            int collections = GC.CollectionCount(0) - gcBefore;
            double seconds = kernel.MeasuredSeconds;
            // Every command the kernel queued was reaped: each must have been counted GOOD.
            var metrics = path.Metrics.Snapshot();
            long good = type == "write" ? metrics.WriteCommands : metrics.ReadCommands;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"rbd-ring type={type} qd={depth} ops={ops} seconds={seconds:F3} iops={ops / seconds:F0} " +
                $"alloc_bytes_per_cmd={(double)allocated / ops:F1} gen0_collections={collections} workers={loop.WorkerCount} " +
                $"cpu_us_per_cmd={cpuMicroseconds / ops:F1}"));
            long all = kernel.Total;
            if (good != all || metrics.Commands != all)
            {
                Console.Error.WriteLine($"rbd-ring: {all - good} of {all} commands did not complete GOOD: the figure is not valid");
                return 1;
            }
            return 0;
        }
        finally
        {
            loop.Dispose();
            ring.Dispose();
        }
    }

    private static void Poll(long deadline)
    {
        if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException("the commands did not finish in 10 minutes");
        Thread.Sleep(5);
    }

    /// <summary>
    /// The kernel side: keeps <c>depth</c> commands queued until <c>ops</c> were queued after the
    /// warm-up (at least <c>warmup</c> completed and <c>warmupSeconds</c> gone). The
    /// ring's kick is the 4-byte write to /dev/uioN, where the kernel reaps completions; the next
    /// commands are queued right there, and one "uio event" (eventfd write) announces them.
    /// Allocates nothing per command (the simulator records no completions).
    /// </summary>
    private sealed class QueueKeeper(RingSimulator sim, EventFd source, bool write, int depth, long warmup, double warmupSeconds, long ops, long slots)
        : IRingNotifier
    {
        private readonly Lock _lock = new();
        private readonly byte[] _cdb = [write ? (byte)0x2A : (byte)0x28, 0, 0, 0, 0, 0, 0, 0, TransferBytes / LogicalBlock, 0];
        private readonly byte[] _dataOut = RandomBytes(TransferBytes);
        private long _queued;
        private ulong _random = 0x9E3779B97F4A7C15;

        private long _measureFrom, _measureTo;
        private long _started;
        private long _total = long.MaxValue; // known at the end of the warm-up

        public bool Warm => Volatile.Read(ref _measureFrom) != 0;

        /// <summary>Commands queued in all, warm-up included; valid once <see cref="Finished"/>.</summary>
        public long Total => Volatile.Read(ref _total);

        /// <summary>From the reap that completed the warm-up to the one that completed the last command.</summary>
        public double MeasuredSeconds => (double)(Volatile.Read(ref _measureTo) - Volatile.Read(ref _measureFrom)) / Stopwatch.Frequency;

        public bool Finished => Volatile.Read(ref _measureTo) != 0;

        public void Start()
        {
            _started = Stopwatch.GetTimestamp();
            Refill();
        }

        public void Kick()
        {
            sim.Kick();
            Refill();
        }

        private void Refill()
        {
            bool queued = false;
            lock (_lock)
            {
                long completed = sim.CompletedCount;
                if (_measureFrom == 0 && completed >= warmup
                    && Stopwatch.GetTimestamp() - _started >= (long)(warmupSeconds * Stopwatch.Frequency))
                {
                    Volatile.Write(ref _total, completed + ops);
                    Volatile.Write(ref _measureFrom, Stopwatch.GetTimestamp());
                }
                if (_measureTo == 0 && completed >= _total) _measureTo = Stopwatch.GetTimestamp();
                while (_queued < _total && _queued - completed < depth)
                {
                    // xorshift64: a random 4 KiB-aligned block over the whole image.
                    _random ^= _random << 13;
                    _random ^= _random >> 7;
                    _random ^= _random << 17;
                    uint lba = (uint)(_random % (ulong)slots * (TransferBytes / LogicalBlock));
                    _cdb[2] = (byte)(lba >> 24);
                    _cdb[3] = (byte)(lba >> 16);
                    _cdb[4] = (byte)(lba >> 8);
                    _cdb[5] = (byte)lba;
                    bool ok = write ? sim.TrySubmit(_cdb, _dataOut, 0, out _) : sim.TrySubmit(_cdb, default, TransferBytes, out _);
                    if (!ok) throw new InvalidOperationException("simulated ring full: it is sized for 128 commands of 4 KiB");
                    _queued++;
                    queued = true;
                }
            }
            if (queued) source.Signal();
        }

        private static byte[] RandomBytes(int n)
        {
            var b = new byte[n];
            new Random(7).NextBytes(b);
            return b;
        }
    }
}
