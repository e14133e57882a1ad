using System.Globalization;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli;

/// <summary>
/// <c>tsvctl status --watch</c>: one row per path, refreshed every interval, with rates computed
/// from the daemon's counters between two statuses (docs/operations.md §14).
/// </summary>
public static class Watch
{
    /// <summary>The table for the interval from <paramref name="before"/> to <paramref name="now"/>;
    /// rates read "-" without an earlier status (or from a daemon that does not count).</summary>
    public static string Render(AdminStatus now, AdminStatus? before)
    {
        double? seconds = now.UptimeSeconds - before?.UptimeSeconds;
        var bounds = now.LatencyBucketBounds ?? [];
        var rows = new List<string[]>();
        foreach (var v in now.Volumes)
        {
            var r = v.Reservations;
            string holder = r.Spc2ReservedBy is { } spc2 ? spc2 + " (SPC-2)"
                : r.Reservation is { } res ? res.Holder ?? "all registrants" : "-";
            foreach (var p in v.Paths)
            {
                var earlier = before?.Volumes.FirstOrDefault(x => x.UnitSerial == v.UnitSerial)?.Paths
                    .FirstOrDefault(x => x.Backstore == p.Backstore)?.Counters;
                var c = p.Counters;
                string iops = "-", mibs = "-", p99 = "-";
                if (c is not null && earlier is not null && seconds > 0 && c.Commands >= earlier.Commands)
                {
                    iops = ((c.Commands - earlier.Commands) / seconds.Value).ToString("0", CultureInfo.InvariantCulture);
                    double bytes = c.ReadBytes + c.WrittenBytes - earlier.ReadBytes - earlier.WrittenBytes;
                    mibs = (bytes / seconds.Value / (1 << 20)).ToString("0.0", CultureInfo.InvariantCulture);
                    p99 = PathMetrics.Quantile(0.99, c.LatencyBuckets, earlier.LatencyBuckets, bounds) is { } q ? Latency(q) : "-";
                }
                rows.Add([v.UnitSerial, p.Backstore, p.Initiator ?? "(unbound)", iops, mibs, p99,
                    c?.InFlight.ToString(CultureInfo.InvariantCulture) ?? "-",
                    r.Registrations.Count.ToString(CultureInfo.InvariantCulture), holder]);
            }
        }
        string title = $"tcmu-shared-volume {now.Version}: {now.Volumes.Count} volume(s), {rows.Count} path(s)" +
                       (seconds > 0 ? $", rates over {seconds:0.#} s" : ", rates from the next refresh");
        return title + "\n" + Table.Format(["VOLUME", "PATH", "INITIATOR", "IOPS", "MiB/s", "P99", "QD", "REGS", "HOLDER"], rows);
    }

    /// <summary>"&lt;=250us": the bucket's upper bound, which is all a histogram knows.</summary>
    private static string Latency(double seconds) =>
        double.IsPositiveInfinity(seconds) ? ">10s"
        : seconds < 0.001 ? "<=" + (seconds * 1e6).ToString("0", CultureInfo.InvariantCulture) + "us"
        : seconds < 1 ? "<=" + (seconds * 1e3).ToString("0.#", CultureInfo.InvariantCulture) + "ms"
        : "<=" + seconds.ToString("0.#", CultureInfo.InvariantCulture) + "s";

    /// <summary>Refreshes until <paramref name="count"/> tables were shown (0: until Ctrl-C).</summary>
    public static int Run(CliContext ctx, Func<AdminStatus> status, TimeSpan interval, int count)
    {
        bool terminal = ReferenceEquals(ctx.Out, Console.Out) && !Console.IsOutputRedirected;
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler? onCancel = null;
        if (terminal)
        {
            onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
            Console.CancelKeyPress += onCancel;
        }
        try
        {
            AdminStatus? before = null;
            for (int shown = 0; count == 0 || shown < count; shown++)
            {
                var now = status();
                string table = Render(now, before);
                if (terminal) ctx.Out.Write("\x1b[H\x1b[2J"); // home, clear: a refreshing table
                else if (shown > 0) ctx.Out.WriteLine();
                ctx.Out.WriteLine(table);
                ctx.Out.Flush();
                before = now;
                if (count != 0 && shown + 1 == count) break;
                if (stop.Token.WaitHandle.WaitOne(0)) break;
                ctx.Sleep(interval, stop.Token);
                if (stop.IsCancellationRequested) break;
            }
            return Cli.Ok;
        }
        finally
        {
            if (onCancel is not null) Console.CancelKeyPress -= onCancel;
        }
    }
}
