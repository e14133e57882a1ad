using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TcmuSharedVolume.Linux.Systemd;
using TcmuSharedVolume.Reservations;

namespace TcmuSharedVolume.Cli;

/// <summary>Runs journalctl with an argument list and returns its standard output (a fake in tests).</summary>
public interface IJournalReader
{
    string Read(IReadOnlyList<string> arguments);
}

/// <summary>The real journalctl: one process, arguments passed as a list (no shell).</summary>
public sealed class ProcessJournalctl(string executable = "journalctl") : IJournalReader
{
    public string Read(IReadOnlyList<string> arguments)
    {
        var psi = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CliFailure($"cannot run {executable}: {e.Message}");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new CliFailure($"{executable} failed (exit {process.ExitCode}): {stderr.Result.Trim()}");
            return stdout.Result;
        }
    }
}

/// <summary>One reservation change as the journal kept it.</summary>
public sealed record HistoryEntry(
    DateTimeOffset Time,
    string ServiceAction,
    string Nexus,
    string Key,
    string Type,
    string PreviousHolder,
    string Generation,
    string Result,
    string Removed);

/// <summary>
/// <c>tsvctl pr history VOLUME</c>: the reservation audit trail of one volume, read from the
/// journal entries the daemon writes for every change (docs/operations.md §12).
/// </summary>
public static class History
{
    /// <summary>journalctl's arguments: our entries (MESSAGE_ID and SYSLOG_IDENTIFIER) of the
    /// volume named by backing path or by unit serial (journalctl ORs the groups around "+").</summary>
    public static IReadOnlyList<string> JournalctlArguments(string volume)
    {
        string id = "MESSAGE_ID=" + ReservationChange.MessageId;
        string ident = "SYSLOG_IDENTIFIER=" + Journal.SyslogIdentifier;
        return ["--no-pager", "-o", "json", id, ident, "VOLUME=" + volume, "+", id, ident, "VOLUME_SERIAL=" + volume];
    }

    /// <summary>Parses journalctl -o json output (one object per line); lines that are not
    /// entries (e.g. "-- No entries --") are skipped.</summary>
    /// <exception cref="CliFailure">A line looks like an entry but is not valid JSON.</exception>
    public static IReadOnlyList<HistoryEntry> Parse(string journalJson)
    {
        var entries = new List<HistoryEntry>();
        int lineNumber = 0;
        foreach (var raw in journalJson.Split('\n'))
        {
            lineNumber++;
            var line = raw.Trim();
            if (!line.StartsWith('{')) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var e = doc.RootElement;
                long usec = long.TryParse(Field(e, "__REALTIME_TIMESTAMP"), NumberStyles.None, CultureInfo.InvariantCulture, out long u) ? u : 0;
                entries.Add(new HistoryEntry(
                    DateTimeOffset.FromUnixTimeMilliseconds(usec / 1000),
                    Field(e, "SERVICE_ACTION"),
                    Field(e, "NEXUS"),
                    Field(e, "KEY"),
                    Field(e, "TYPE"),
                    Field(e, "PREVIOUS_HOLDER"),
                    Field(e, "GENERATION"),
                    Field(e, "RESULT"),
                    Field(e, "REMOVED")));
            }
            catch (JsonException ex)
            {
                throw new CliFailure($"journalctl output line {lineNumber} is not JSON: {ex.Message}");
            }
        }
        return entries;
    }

    /// <summary>journalctl -o json writes a field as a string, as an array of byte values when it
    /// is not valid UTF-8 text, and as an array of those when the entry has it more than once.</summary>
    private static string Field(JsonElement entry, string name)
    {
        if (!entry.TryGetProperty(name, out var v)) return "-";
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString() ?? "-",
            JsonValueKind.Array when v.GetArrayLength() > 0 && v[0].ValueKind == JsonValueKind.Number =>
                System.Text.Encoding.UTF8.GetString(v.EnumerateArray().Select(b => (byte)b.GetInt32()).ToArray()),
            JsonValueKind.Array when v.GetArrayLength() > 0 => Field(v[v.GetArrayLength() - 1]),
            _ => "-",
        };

        static string Field(JsonElement last) => last.ValueKind == JsonValueKind.String ? last.GetString() ?? "-" : "-";
    }

    /// <summary>A table, oldest first, times in UTC.</summary>
    public static string Render(IReadOnlyList<HistoryEntry> entries)
    {
        string[] header = ["TIME (UTC)", "SERVICE ACTION", "NEXUS", "KEY", "TYPE", "PREVIOUS HOLDER", "GEN", "RESULT", "REMOVED"];
        var rows = entries.Select(e => new[]
        {
            e.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
            e.ServiceAction, e.Nexus, e.Key, e.Type, e.PreviousHolder, e.Generation, e.Result, e.Removed,
        }).ToList();
        return Table.Format(header, rows);
    }
}

/// <summary>Left-aligned columns two spaces apart.</summary>
internal static class Table
{
    public static string Format(string[] header, IReadOnlyList<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i == cells.Length - 1 ? c : c.PadRight(widths[i]))).TrimEnd();
        return string.Join('\n', new[] { Line(header) }.Concat(rows.Select(Line)));
    }
}
