using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Reservations;

namespace TcmuSharedVolume.Linux.Systemd;

/// <summary>
/// The daemon's reservation audit trail: one structured journal entry per change, with VOLUME=
/// (the backing path) and VOLUME_SERIAL= beside the change's own fields, so that
/// <c>journalctl VOLUME=/srv/db.img</c> and <c>tsvctl pr history</c> show who fenced whom. Without
/// journald (tests, a container) the same message and fields go to stderr as one log line.
/// </summary>
public sealed class JournalReservationAudit(string backingPath, string unitSerial,
    Func<IReadOnlyList<KeyValuePair<string, string>>, bool>? send = null) : IReservationAuditSink
{
    private readonly Func<IReadOnlyList<KeyValuePair<string, string>>, bool> _send = send ?? Journal.Send;

    /// <summary>The entry's fields as sent: the volume's, the change's, MESSAGE and PRIORITY.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Entry(ReservationChange change)
    {
        var level = change.IsFailure ? LogLevel.Warning : LogLevel.Notice;
        var fields = new List<KeyValuePair<string, string>>
        {
            new("MESSAGE", $"{backingPath}: {change.Message}"),
            new("PRIORITY", ((int)level).ToString(System.Globalization.CultureInfo.InvariantCulture)),
            new("VOLUME", backingPath),
            new("VOLUME_SERIAL", unitSerial),
        };
        fields.AddRange(change.Fields());
        return fields;
    }

    public void Record(ReservationChange change)
    {
        var entry = Entry(change);
        if (_send(entry)) return;
        var level = change.IsFailure ? LogLevel.Warning : LogLevel.Notice;
        Log.Write(level, entry[0].Value + " [" +
            string.Join(" ", entry.Skip(2).Select(f => $"{f.Key}={Quote(f.Value)}")) + "]");
    }

    private static string Quote(string value) => value.Contains(' ') ? $"\"{value}\"" : value;
}
