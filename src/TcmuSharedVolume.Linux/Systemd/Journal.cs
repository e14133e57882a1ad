using System.Text;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Linux.Systemd;

/// <summary>
/// Structured journal entries through sd_journal_sendv: fields a machine can match on
/// (<c>journalctl VOLUME=…</c>), unlike the stderr lines of <see cref="Diagnostics.Log"/>, which
/// journald stores as MESSAGE only.
/// </summary>
public static unsafe class Journal
{
    public const string SyslogIdentifier = "tcmu-shared-volume";

    /// <summary>Sends one entry (SYSLOG_IDENTIFIER is added). Returns false when journald is not
    /// there (not running, not a systemd host, libsystemd missing): the caller falls back.</summary>
    public static bool Send(IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        // Every "FIELD=value" back to back in one buffer; the iovecs point into it.
        var lines = new string[fields.Count + 1];
        lines[0] = "SYSLOG_IDENTIFIER=" + SyslogIdentifier;
        for (int i = 0; i < fields.Count; i++)
            lines[i + 1] = fields[i].Key + "=" + OneLine(fields[i].Value);
        var buffer = Encoding.UTF8.GetBytes(string.Concat(lines));
        var iov = new IoVec[lines.Length];
        try
        {
            fixed (byte* start = buffer)
            fixed (IoVec* p = iov)
            {
                nint offset = 0;
                for (int i = 0; i < lines.Length; i++)
                {
                    int length = Encoding.UTF8.GetByteCount(lines[i]);
                    iov[i] = new IoVec((nint)start + offset, length);
                    offset += length;
                }
                return LibSystemd.sd_journal_sendv(p, iov.Length) >= 0;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    // journald would accept a newline in a value sent this way, but journalctl's short output
    // and the stderr fallback are line-based.
    private static string OneLine(string value) => value.Replace('\n', ' ');
}
