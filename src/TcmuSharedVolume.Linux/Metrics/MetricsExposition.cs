using System.Globalization;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Linux.Metrics;

/// <summary>The daemon process as /proc/self/status shows it, and how long it has run.</summary>
public readonly record struct ProcessStats(double UptimeSeconds, long ResidentBytes, int Threads)
{
    /// <summary>VmRSS and Threads of /proc/self/status (0 where they cannot be read).</summary>
    public static ProcessStats Read(TimeSpan uptime, string statusFile = "/proc/self/status")
    {
        long rss = 0;
        int threads = 0;
        try
        {
            foreach (var line in File.ReadLines(statusFile))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    rss = long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                    threads = int.Parse(line.AsSpan(8).Trim(), CultureInfo.InvariantCulture);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            // A metric that reads 0 beats a scrape that fails.
        }
        return new ProcessStats(uptime.TotalSeconds, rss, threads);
    }
}

/// <summary>
/// The metrics endpoint's page: daemon, volume and path metrics in Prometheus' text format
/// (docs/operations.md §13). Volumes are labelled by unit serial, paths by backstore name;
/// initiator names and keys are left out, since the endpoint has no authentication (tsvctl
/// status, root only, maps a backstore to its initiator).
/// </summary>
public static class MetricsExposition
{
    public static string Render(IReadOnlyList<Volume> volumes, ProcessStats process, string version)
    {
        var t = new PrometheusText();
        t.Family("tsv_build_info", "gauge", "The daemon's version (always 1).").Sample("tsv_build_info", 1, ("version", version));
        t.Family("tsv_uptime_seconds", "gauge", "Seconds since the daemon started.").Sample("tsv_uptime_seconds", process.UptimeSeconds);
        t.Family("tsv_resident_memory_bytes", "gauge", "Resident set size of the daemon (VmRSS).").Sample("tsv_resident_memory_bytes", process.ResidentBytes);
        t.Family("tsv_threads", "gauge", "Threads of the daemon process.").Sample("tsv_threads", process.Threads);
        t.Family("tsv_volumes", "gauge", "Volumes served.").Sample("tsv_volumes", volumes.Count);
        t.Family("tsv_paths", "gauge", "Paths (backstores, one I_T nexus each) served.").Sample("tsv_paths", volumes.Sum(v => v.Paths.Count));

        var snapshots = volumes.Select(v => (Volume: v, Reservations: v.Reservations.Snapshot())).ToList();
        Family(t, "tsv_volume_info", "gauge", "A volume (always 1): its unit serial and backing store.",
            snapshots, (v, _) => 1, v => [("backing", v.BackingPath)]);
        Family(t, "tsv_volume_registrations", "gauge", "Registered I_T nexuses (PR registrations).",
            snapshots, (_, r) => r.Registrations.Count);
        Family(t, "tsv_volume_pr_generation", "gauge", "PRgeneration of the reservation table (restarts at 0 with the daemon).",
            snapshots, (_, r) => r.Generation);
        Family(t, "tsv_volume_reservation_type", "gauge",
            "Persistent reservation type, as its SPC-4 code (0 none, 1 WE, 3 EA, 5 WE_RO, 6 EA_RO, 7 WE_AR, 8 EA_AR).",
            snapshots, (_, r) => (int)r.Type);
        Family(t, "tsv_volume_spc2_reserved", "gauge", "1 while an SPC-2 RESERVE holds the volume.",
            snapshots, (_, r) => r.Spc2Holder is null ? 0 : 1);

        var paths = volumes.SelectMany(v => v.Paths.Select(p => (Path: p, Metrics: p.Metrics.Snapshot()))).ToList();
        PathFamily(t, "tsv_path_bound", "gauge", "1 when the path is bound to exactly one initiator (docs/architecture.md §4).",
            paths, (p, _) => p.Nexus is null ? 0 : 1);
        PathFamily(t, "tsv_path_queue_depth", "gauge", "Commands of the path running in the daemon now.",
            paths, (p, _) => p.InFlight);
        PathFamily(t, "tsv_path_commands_total", "counter", "Commands the path finished, any status.",
            paths, (_, m) => m.Commands);
        PathFamily(t, "tsv_path_read_commands_total", "counter", "READ(6/10/12/16) commands that returned GOOD.",
            paths, (_, m) => m.ReadCommands);
        PathFamily(t, "tsv_path_write_commands_total", "counter", "WRITE and WRITE AND VERIFY commands that returned GOOD.",
            paths, (_, m) => m.WriteCommands);
        PathFamily(t, "tsv_path_read_bytes_total", "counter", "Bytes read by those READ commands.",
            paths, (_, m) => m.ReadBytes);
        PathFamily(t, "tsv_path_written_bytes_total", "counter", "Bytes written by those WRITE commands.",
            paths, (_, m) => m.WrittenBytes);
        PathFamily(t, "tsv_path_reservation_conflicts_total", "counter", "Commands answered RESERVATION CONFLICT.",
            paths, (_, m) => m.ReservationConflicts);
        PathFamily(t, "tsv_path_busy_total", "counter", "Commands answered BUSY or TASK SET FULL (the initiator retries).",
            paths, (_, m) => m.Busy);

        t.Family("tsv_path_check_conditions_total", "counter", "Commands answered CHECK CONDITION, by sense key (keys seen so far).");
        foreach (var (p, m) in paths)
            for (int key = 0; key < m.CheckConditionsBySenseKey.Length; key++)
                if (m.CheckConditionsBySenseKey[key] > 0)
                    t.Sample("tsv_path_check_conditions_total", m.CheckConditionsBySenseKey[key],
                        [.. PathLabels(p), ("sense_key", SenseKeyName(key))]);

        const string duration = "tsv_path_command_duration_seconds";
        t.Family(duration, "histogram", "Time a command spent in the daemon, from a worker taking it to its status.");
        foreach (var (p, m) in paths)
        {
            var labels = PathLabels(p);
            long cumulative = 0;
            for (int i = 0; i < m.LatencyBuckets.Length; i++)
            {
                cumulative += m.LatencyBuckets[i];
                double bound = i < PathMetrics.LatencyBucketBounds.Length ? PathMetrics.LatencyBucketBounds[i] : double.PositiveInfinity;
                t.Sample(duration + "_bucket", cumulative, [.. labels, ("le", PrometheusText.Number(bound))]);
            }
            t.Sample(duration + "_sum", m.LatencySecondsSum, labels);
            t.Sample(duration + "_count", cumulative, labels);
        }
        return t.ToString();
    }

    private static void Family(PrometheusText t, string name, string type, string help,
        List<(Volume Volume, ReservationSnapshot Reservations)> volumes, Func<Volume, ReservationSnapshot, double> value,
        Func<Volume, (string, string)[]>? extra = null)
    {
        t.Family(name, type, help);
        foreach (var (v, r) in volumes)
            t.Sample(name, value(v, r), [("volume", v.Identity.UnitSerial), .. extra?.Invoke(v) ?? []]);
    }

    private static void PathFamily(PrometheusText t, string name, string type, string help,
        List<(VolumePath Path, PathMetricsSnapshot Metrics)> paths, Func<VolumePath, PathMetricsSnapshot, double> value)
    {
        t.Family(name, type, help);
        foreach (var (p, m) in paths)
            t.Sample(name, value(p, m), PathLabels(p));
    }

    private static (string, string)[] PathLabels(VolumePath p) => [("volume", p.Volume.Identity.UnitSerial), ("path", p.Name)];

    /// <summary>SPC-4 4.5.6 Table 27, in the lower case Prometheus label values favour.</summary>
    public static string SenseKeyName(int key) => (SenseKey)key switch
    {
        SenseKey.NoSense => "no_sense",
        SenseKey.RecoveredError => "recovered_error",
        SenseKey.NotReady => "not_ready",
        SenseKey.MediumError => "medium_error",
        SenseKey.HardwareError => "hardware_error",
        SenseKey.IllegalRequest => "illegal_request",
        SenseKey.UnitAttention => "unit_attention",
        SenseKey.DataProtect => "data_protect",
        SenseKey.AbortedCommand => "aborted_command",
        SenseKey.Miscompare => "miscompare",
        _ => "0x" + key.ToString("x", CultureInfo.InvariantCulture),
    };
}
