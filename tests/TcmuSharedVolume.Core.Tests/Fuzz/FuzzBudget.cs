using System.Diagnostics;
using Xunit.Abstractions;

namespace TcmuSharedVolume.Tests.Fuzz;

/// <summary>
/// How many generated cases a fuzz target runs: its default in the normal test run, or
/// TSV_FUZZ_CASES for a longer run (e.g. TSV_FUZZ_CASES=10000000). Seeds are fixed so a
/// failure repeats; TSV_FUZZ_SEED picks another seed for a long run.
/// </summary>
public static class FuzzBudget
{
    public const string CasesVariable = "TSV_FUZZ_CASES";
    public const string SeedVariable = "TSV_FUZZ_SEED";

    public static int Cases(int normalRun = 100_000) =>
        int.TryParse(Environment.GetEnvironmentVariable(CasesVariable), out var n) && n > 0 ? n : normalRun;

    public static int Seed(int normalRun) =>
        int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out var s) ? s : normalRun;

    /// <summary>Runs <paramref name="body"/> for case numbers 0..cases-1 and prints one line with
    /// the count and the time; the message of a failing case names the seed and case number.</summary>
    public static void Run(ITestOutputHelper output, string target, int cases, int seed, Action<Random, int> body)
    {
        var rng = new Random(seed);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < cases; i++)
        {
            try
            {
                body(rng, i);
            }
            catch (Exception e) when (e is not FuzzFailure)
            {
                throw new FuzzFailure($"{target}: case {i} of seed {seed} failed: {e.GetType().Name}: {e.Message}", e);
            }
        }
        clock.Stop();
        string line = $"fuzz {target}: {cases:N0} cases in {clock.Elapsed.TotalSeconds:F1} s (seed {seed})";
        output.WriteLine(line);
        Console.WriteLine(line);
    }
}

public sealed class FuzzFailure(string message, Exception? inner = null) : Exception(message, inner);
