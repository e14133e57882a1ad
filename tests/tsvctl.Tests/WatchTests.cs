using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli.Tests;

/// <summary>tsvctl status --watch: rates between two statuses of the daemon.</summary>
public sealed class WatchTests : IDisposable
{
    private readonly Sandbox _s = new();

    public void Dispose() => _s.Dispose();

    private static readonly int Buckets = PathMetrics.LatencyBucketBounds.Length + 1;

    private static string Status(double uptime, long commands, long bytes, long[] buckets, long inFlight = 0, bool counters = true)
    {
        var regs = new List<RegistrationStatus> { new("iqn.2026-11.test:node1", "iqn.2026-11.test:t,t,0x1", "00000000000000a1") };
        var reservations = new ReservationStatus(3, false, regs,
            new PersistentReservationStatus("Write Exclusive", "iqn.2026-11.test:node1", "00000000000000a1"), null);
        var path = new PathStatus("user_1/vol-node1", "iqn.2026-11.test:node1", "iqn.2026-11.test:t,t,0x1", null)
        {
            Counters = counters ? new PathCounters(commands, bytes, 0, inFlight, buckets) : null,
        };
        var unbound = new PathStatus("user_1/vol-node2", null, null, "no ACL maps the LUN");
        var volume = new VolumeStatus("/srv/vol.img", "0123abcd", 1 << 30, 512, [path, unbound], reservations);
        return AdminJsonContext.Serialize(new AdminStatus("0.1.0", [volume])
        {
            UptimeSeconds = uptime,
            LatencyBucketBounds = PathMetrics.LatencyBucketBounds,
        });
    }

    private static long[] Histogram(params (int Bucket, long Count)[] counts)
    {
        var b = new long[Buckets];
        foreach (var (i, n) in counts) b[i] = n;
        return b;
    }

    [Fact]
    public void TheSecondTableShowsRatesOverTheDaemonsInterval()
    {
        _s.Admin.Next.Enqueue(Status(100, 5000, 20L << 20, Histogram((2, 5000))));
        // 2 s later by the daemon's clock: 1000 commands, 8 MiB; 1.1 % took up to 5 ms.
        _s.Admin.Next.Enqueue(Status(102, 6000, 28L << 20, Histogram((2, 5989), (6, 11)), inFlight: 4));

        Assert.Equal(0, _s.Run("status", "--watch", "--count", "2", "--interval", "1.5"));

        var tables = _s.Out.ToString().Split("\n\n");
        Assert.Equal(2, tables.Length);
        Assert.Contains("rates from the next refresh", tables[0]);
        var first = tables[0].Split('\n')[2];
        Assert.Matches(@"^0123abcd\s+user_1/vol-node1\s+iqn.2026-11.test:node1\s+-\s+-\s+-\s+0\s+1\s+iqn.2026-11.test:node1$", first);
        Assert.Contains("rates over 2 s", tables[1]);
        var lines = tables[1].Split('\n');
        Assert.Matches(@"^VOLUME\s+PATH\s+INITIATOR\s+IOPS\s+MiB/s\s+P99\s+QD\s+REGS\s+HOLDER$", lines[1]);
        Assert.Matches(@"^0123abcd\s+user_1/vol-node1\s+iqn.2026-11.test:node1\s+500\s+4.0\s+<=5ms\s+4\s+1\s+iqn.2026-11.test:node1$", lines[2]);
        Assert.Matches(@"^0123abcd\s+user_1/vol-node2\s+\(unbound\)\s+-\s+-\s+-\s+-\s+1\s+iqn", lines[3]);
        Assert.Equal([TimeSpan.FromSeconds(1.5)], _s.Slept);
    }

    [Fact]
    public void ADaemonWithoutCountersShowsNoRates()
    {
        _s.Admin.Next.Enqueue(Status(1, 0, 0, Histogram(), counters: false));
        _s.Admin.Next.Enqueue(Status(3, 0, 0, Histogram(), counters: false));

        Assert.Equal(0, _s.Run("status", "--watch", "--count", "2"));

        Assert.Matches(@"user_1/vol-node1\s+iqn.2026-11.test:node1\s+-\s+-\s+-\s+-\s+1", _s.Out.ToString().Split("\n\n")[1]);
    }

    [Theory]
    [InlineData("--json")]
    [InlineData("--interval", "0")]
    [InlineData("--interval", "7200")]
    [InlineData("--count", "-1")]
    public void BadCombinationsAreUsageErrors(params string[] extra)
    {
        Assert.Equal(2, _s.Run(["status", "--watch", .. extra]));
        Assert.StartsWith("tsvctl: ", _s.ErrorLine());
    }
}
