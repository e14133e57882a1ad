using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

namespace TcmuSharedVolume.Benchmarks;

public static class Program
{
    /// <summary>
    /// `make bench` runs every benchmark with a short job (one launch, 3 warm-up and 5 measured
    /// iterations): the whole set finishes in a few minutes on two cores and still shows the order
    /// of magnitude and the allocations. Pass `--job default` (or any --job) for the long runs.
    /// </summary>
    public static int Main(string[] args)
    {
        // scripts/bench/rbd-vs-librbd.sh: one timed run on an RBD image, not a BenchmarkDotNet job.
        if (args.Length > 0 && args[0] == "rbd-ring") return RbdRingBenchmark.Run(args[1..]);
        IConfig config = DefaultConfig.Instance;
        if (!args.Any(a => a is "--job" or "-j"))
            config = config.AddJob(Job.ShortRun.WithIterationCount(5).WithId("Short"));
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
        return 0;
    }
}
