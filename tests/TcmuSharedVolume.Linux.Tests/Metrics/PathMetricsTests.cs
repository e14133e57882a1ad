using System.Diagnostics;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Tests.Metrics;

public sealed unsafe class PathMetricsTests
{
    private static readonly long Micro = Stopwatch.Frequency / 1_000_000;

    private static ScsiCommand Command(byte op, long dataLength)
    {
        var c = new ScsiCommand();
        c.SetCdb([op, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        // The counters read only the length; no memory behind it is touched.
        c.Data = new DataBuffer((IoVec*)0, 0, dataLength);
        return c;
    }

    [Fact]
    public void GoodReadsAndWritesCountCommandsAndBytes()
    {
        var m = new PathMetrics();
        var read = Command(OperationCode.Read10, 4096);
        read.Good();
        m.Record(read, 30 * Micro);
        var partial = Command(OperationCode.Read16, 8192);
        partial.Good(512);
        m.Record(partial, 30 * Micro);
        var write = Command(OperationCode.Write10, 65536);
        write.Good(0);
        m.Record(write, 30 * Micro);
        var tur = Command(OperationCode.TestUnitReady, 0);
        tur.Good();
        m.Record(tur, 30 * Micro);

        var s = m.Snapshot();
        Assert.Equal((4L, 2L, 1L, 4096L + 512, 65536L), (s.Commands, s.ReadCommands, s.WriteCommands, s.ReadBytes, s.WrittenBytes));
    }

    [Fact]
    public void FailuresAreCountedByKindAndMoveNoBytes()
    {
        var m = new PathMetrics();
        var fixedSense = Command(OperationCode.Read10, 4096);
        fixedSense.CheckCondition(SenseCode.LbaOutOfRange);
        m.Record(fixedSense, 1);
        var descriptor = Command(OperationCode.Write10, 4096);
        descriptor.DescriptorSense = true;
        descriptor.CheckCondition(SenseCode.WriteError);
        m.Record(descriptor, 1);
        var conflict = Command(OperationCode.Write10, 4096);
        conflict.ReservationConflict();
        m.Record(conflict, 1);
        var busy = Command(OperationCode.Write10, 4096);
        busy.Complete(ScsiStatus.Busy);
        m.Record(busy, 1);

        var s = m.Snapshot();
        Assert.Equal(1, s.CheckConditionsBySenseKey[(int)SenseKey.IllegalRequest]);
        Assert.Equal(1, s.CheckConditionsBySenseKey[(int)SenseKey.MediumError]);
        Assert.Equal(2, s.CheckConditionsBySenseKey.Sum());
        Assert.Equal((1L, 1L, 4L, 0L, 0L, 0L), (s.ReservationConflicts, s.Busy, s.Commands, s.ReadBytes, s.WrittenBytes, s.ReadCommands + s.WriteCommands));
    }

    [Fact]
    public void LatencyLandsInTheFirstBucketWhoseBoundHoldsIt()
    {
        var m = new PathMetrics();
        var c = Command(OperationCode.TestUnitReady, 0);
        c.Good();
        m.Record(c, 50 * Micro);               // exactly 50 µs: the first bucket (le="5e-05")
        m.Record(c, 51 * Micro);               // the second (le="0.0001")
        m.Record(c, 11 * Stopwatch.Frequency); // past 10 s: +Inf

        var s = m.Snapshot();
        Assert.Equal(1, s.LatencyBuckets[0]);
        Assert.Equal(1, s.LatencyBuckets[1]);
        Assert.Equal(1, s.LatencyBuckets[^1]);
        Assert.Equal(PathMetrics.LatencyBucketBounds.Length + 1, s.LatencyBuckets.Length);
        Assert.InRange(s.LatencySecondsSum, 11.0001, 11.0002);
    }

    [Fact]
    public void QuantileIsTheBoundOfTheBucketHoldingIt()
    {
        double[] bounds = [0.001, 0.01, 0.1];
        long[] before = [10, 0, 0, 0];
        long[] now = [108, 1, 1, 0]; // 100 new: 98 ≤ 1 ms, 1 ≤ 10 ms, 1 ≤ 100 ms
        Assert.Equal(0.001, PathMetrics.Quantile(0.98, now, before, bounds));
        Assert.Equal(0.01, PathMetrics.Quantile(0.99, now, before, bounds));
        Assert.Equal(0.1, PathMetrics.Quantile(1.0, now, before, bounds));
        Assert.Equal(double.PositiveInfinity, PathMetrics.Quantile(0.99, [0, 0, 0, 5], null, bounds));
        Assert.Null(PathMetrics.Quantile(0.99, before, before, bounds));
    }
}
