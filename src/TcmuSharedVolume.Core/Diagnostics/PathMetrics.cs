using System.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Diagnostics;

/// <summary>
/// What one path has done, for the metrics endpoint and <c>tsvctl status --watch</c>
/// (docs/operations.md §13). Plain counters, bumped with Interlocked by whichever worker thread
/// ran the command (several may run one ring's commands at once): no lock, no allocation, a few
/// nanoseconds per command. Readers see each counter exactly; counters are not read as one
/// atomic snapshot, which Prometheus does not need.
/// </summary>
public sealed class PathMetrics
{
    /// <summary>Upper bounds of the latency histogram's buckets, in seconds (the +Inf bucket follows).
    /// Fixed: from a tmpfs-fast 50 µs to a backend that stalls for 10 s.</summary>
    public static readonly double[] LatencyBucketBounds =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private static readonly long[] BucketTicks = LatencyBucketBounds.Select(s => (long)(s * Stopwatch.Frequency)).ToArray();

    private readonly long[] _buckets = new long[LatencyBucketBounds.Length + 1]; // not cumulative; last: +Inf
    private readonly long[] _checkConditions = new long[16];                      // by sense key
    private long _latencyTicks;
    private long _readCommands;
    private long _writeCommands;
    private long _readBytes;
    private long _writtenBytes;
    private long _conflicts;
    private long _busy;

    /// <summary>Counts a finished command: <paramref name="elapsedTicks"/> is its time in the daemon,
    /// in <see cref="Stopwatch"/> ticks. Hot path: Interlocked only.</summary>
    public void Record(ScsiCommand command, long elapsedTicks)
    {
        int bucket = 0;
        while (bucket < BucketTicks.Length && elapsedTicks > BucketTicks[bucket]) bucket++;
        Interlocked.Increment(ref _buckets[bucket]);
        Interlocked.Add(ref _latencyTicks, elapsedTicks);

        switch (command.Status)
        {
            case ScsiStatus.Good:
                switch (command.OperationCode)
                {
                    case OperationCode.Read6 or OperationCode.Read10 or OperationCode.Read12 or OperationCode.Read16:
                        Interlocked.Increment(ref _readCommands);
                        Interlocked.Add(ref _readBytes, command.DataInLength >= 0 ? command.DataInLength : command.Data.Length);
                        break;
                    case OperationCode.Write6 or OperationCode.Write10 or OperationCode.Write12 or OperationCode.Write16
                        or OperationCode.WriteAndVerify10 or OperationCode.WriteAndVerify12 or OperationCode.WriteAndVerify16:
                        Interlocked.Increment(ref _writeCommands);
                        Interlocked.Add(ref _writtenBytes, command.Data.Length);
                        break;
                }
                break;
            case ScsiStatus.CheckCondition:
                Interlocked.Increment(ref _checkConditions[SenseKeyOf(command.Sense)]);
                break;
            case ScsiStatus.ReservationConflict:
                Interlocked.Increment(ref _conflicts);
                break;
            case ScsiStatus.Busy or ScsiStatus.TaskSetFull:
                Interlocked.Increment(ref _busy);
                break;
        }
    }

    /// <summary>
    /// The upper bound of the histogram bucket that holds quantile <paramref name="q"/> (0..1) of
    /// the commands counted between <paramref name="before"/> (null: none) and <paramref name="now"/>,
    /// per-bucket counts with +Inf last; <see cref="double.PositiveInfinity"/> past the last bound,
    /// null when no command was counted. As precise as the buckets, which is what a p99 needs.
    /// </summary>
    public static double? Quantile(double q, IReadOnlyList<long> now, IReadOnlyList<long>? before, IReadOnlyList<double> bounds)
    {
        long total = 0;
        for (int i = 0; i < now.Count; i++) total += now[i] - (before?[i] ?? 0);
        if (total <= 0) return null;
        double rank = q * total;
        long seen = 0;
        for (int i = 0; i < now.Count; i++)
        {
            seen += now[i] - (before?[i] ?? 0);
            if (seen >= rank) return i < bounds.Count ? bounds[i] : double.PositiveInfinity;
        }
        return double.PositiveInfinity;
    }

    /// <summary>Fixed format (70h/71h): byte 2; descriptor format (72h/73h): byte 1.</summary>
    private static int SenseKeyOf(ReadOnlySpan<byte> sense)
    {
        if (sense.Length < 3) return 0;
        return (sense[0] & 0x7F) >= 0x72 ? sense[1] & 0x0F : sense[2] & 0x0F;
    }

    /// <summary>A copy of the counters now.</summary>
    public PathMetricsSnapshot Snapshot()
    {
        var buckets = new long[_buckets.Length];
        for (int i = 0; i < buckets.Length; i++) buckets[i] = Volatile.Read(ref _buckets[i]);
        var sense = new long[_checkConditions.Length];
        for (int i = 0; i < sense.Length; i++) sense[i] = Volatile.Read(ref _checkConditions[i]);
        return new PathMetricsSnapshot(
            buckets,
            (double)Interlocked.Read(ref _latencyTicks) / Stopwatch.Frequency,
            Interlocked.Read(ref _readCommands),
            Interlocked.Read(ref _writeCommands),
            Interlocked.Read(ref _readBytes),
            Interlocked.Read(ref _writtenBytes),
            sense,
            Interlocked.Read(ref _conflicts),
            Interlocked.Read(ref _busy));
    }
}

/// <summary>A path's counters at one moment. <see cref="LatencyBuckets"/> are per bucket (not
/// cumulative), the last one being +Inf; their sum is every command the path finished.</summary>
public sealed record PathMetricsSnapshot(
    long[] LatencyBuckets,
    double LatencySecondsSum,
    long ReadCommands,
    long WriteCommands,
    long ReadBytes,
    long WrittenBytes,
    long[] CheckConditionsBySenseKey,
    long ReservationConflicts,
    long Busy)
{
    public long Commands => LatencyBuckets.Sum();

    /// <summary>The upper bound of the bucket holding quantile <paramref name="q"/> of the commands
    /// counted since <paramref name="earlier"/> (null: since the start); null when there were none.</summary>
    public double? Quantile(double q, PathMetricsSnapshot? earlier) =>
        PathMetrics.Quantile(q, LatencyBuckets, earlier?.LatencyBuckets, PathMetrics.LatencyBucketBounds);
}
