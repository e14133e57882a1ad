using System.Globalization;
using TcmuSharedVolume.Linux.Metrics;
using TcmuSharedVolume.Tests.EndToEnd;

namespace TcmuSharedVolume.Tests.Metrics;

/// <summary>The page the endpoint serves, after real commands went through two simulated rings.</summary>
public sealed class MetricsExpositionTests
{
    private static Dictionary<string, double> Samples(string page) =>
        page.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.StartsWith('#'))
            .Select(l => (Key: l[..l.LastIndexOf(' ')], Value: l[(l.LastIndexOf(' ') + 1)..]))
            .ToDictionary(x => x.Key, x => x.Value == "+Inf" ? double.PositiveInfinity : double.Parse(x.Value, CultureInfo.InvariantCulture));

    [Fact]
    public void CountersFollowTheCommandsOfEachPath()
    {
        using var rig = new TwoPathRig();
        var data = new byte[8 * TwoPathRig.BlockSize];
        for (int i = 0; i < 10; i++) CompletionAssert.Good(TwoPathRig.Run(rig.A, Cdb.Write10((uint)i * 8, 8), data));
        for (int i = 0; i < 3; i++) CompletionAssert.Good(TwoPathRig.Run(rig.B, Cdb.Read10(0, 8), dataIn: data.Length));
        // node1 registers and reserves Write Exclusive: node2's write conflicts.
        CompletionAssert.Good(TwoPathRig.Run(rig.A, Cdb.PrOut(Cdb.Register), Cdb.PrOutParameters(0, 0xA1)));
        CompletionAssert.Good(TwoPathRig.Run(rig.A, Cdb.PrOut(Cdb.Reserve, Cdb.WriteExclusive), Cdb.PrOutParameters(0xA1, 0)));
        Assert.Equal(0x18, TwoPathRig.Run(rig.B, Cdb.Write10(0, 8), data).Status);
        // Past the end: ILLEGAL REQUEST.
        Assert.Equal(2, TwoPathRig.Run(rig.B, Cdb.Read10(uint.MaxValue - 8, 8), dataIn: data.Length).Status);

        string page = MetricsExposition.Render([rig.Volume], new ProcessStats(12.5, 1 << 20, 7), "0.1.0");
        var s = Samples(page);
        string serial = rig.Volume.Identity.UnitSerial;
        string a = $"{{volume=\"{serial}\",path=\"user_1/vol-node1\"}}", b = $"{{volume=\"{serial}\",path=\"user_1/vol-node2\"}}";

        Assert.Equal(12.5, s["tsv_uptime_seconds"]);
        Assert.Equal(1 << 20, s["tsv_resident_memory_bytes"]);
        Assert.Equal(7, s["tsv_threads"]);
        Assert.Equal(1, s["tsv_volumes"]);
        Assert.Equal(2, s["tsv_paths"]);
        Assert.Equal(1, s[$"tsv_volume_registrations{{volume=\"{serial}\"}}"]);
        Assert.Equal(1, s[$"tsv_volume_reservation_type{{volume=\"{serial}\"}}"]);
        Assert.Equal(1, s[$"tsv_volume_pr_generation{{volume=\"{serial}\"}}"]);

        Assert.Equal(10, s["tsv_path_write_commands_total" + a]);
        Assert.Equal(10 * data.Length, s["tsv_path_written_bytes_total" + a]);
        Assert.Equal(0, s["tsv_path_read_commands_total" + a]);
        Assert.Equal(3, s["tsv_path_read_commands_total" + b]);
        Assert.Equal(3 * data.Length, s["tsv_path_read_bytes_total" + b]);
        Assert.Equal(1, s["tsv_path_reservation_conflicts_total" + b]);
        Assert.Equal(1, s[$"tsv_path_check_conditions_total{{volume=\"{serial}\",path=\"user_1/vol-node2\",sense_key=\"illegal_request\"}}"]);
        Assert.Equal(0, s["tsv_path_queue_depth" + a]);
        Assert.Equal(1, s["tsv_path_bound" + a]);

        // Every command, whatever its status, is in the histogram, and its buckets only grow.
        foreach (var (path, commands) in new[] { (a, 12.0), (b, 5.0) })
        {
            Assert.Equal(commands, s["tsv_path_commands_total" + path]);
            Assert.Equal(commands, s["tsv_path_command_duration_seconds_count" + path]);
            string inf = path.Replace("}", ",le=\"+Inf\"}");
            Assert.Equal(commands, s["tsv_path_command_duration_seconds_bucket" + inf]);
            var buckets = s.Where(kv => kv.Key.StartsWith("tsv_path_command_duration_seconds_bucket" + path[..^1], StringComparison.Ordinal))
                .Select(kv => kv.Value).ToList();
            Assert.Equal(18, buckets.Count);
            Assert.Equal(buckets.OrderBy(x => x), buckets);
        }
        // One HELP and one TYPE per family, and no initiator names or keys on an unauthenticated page.
        Assert.Equal(page.Split('\n').Count(l => l.StartsWith("# HELP ")), page.Split('\n').Count(l => l.StartsWith("# TYPE ")));
        Assert.DoesNotContain("iqn.", page);
    }

    [Fact]
    public void ProcessStatsComeFromProcSelfStatus()
    {
        var p = ProcessStats.Read(TimeSpan.FromSeconds(3));
        Assert.Equal(3, p.UptimeSeconds);
        Assert.True(p.ResidentBytes > 1 << 20, $"VmRSS {p.ResidentBytes}");
        Assert.True(p.Threads >= 1);
        Assert.Equal(new ProcessStats(1, 0, 0), ProcessStats.Read(TimeSpan.FromSeconds(1), "/nonexistent/status"));
    }
}
