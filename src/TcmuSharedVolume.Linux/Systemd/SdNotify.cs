using System.Net.Sockets;
using System.Text;

namespace TcmuSharedVolume.Linux.Systemd;

/// <summary>
/// The sd_notify(3) protocol: one datagram of "KEY=value\n" lines to the AF_UNIX socket named by
/// NOTIFY_SOCKET ('@' = abstract namespace). It is written here in managed code rather than by
/// calling libsystemd's sd_notify, because sd_notify reads NOTIFY_SOCKET with getenv(3) from the
/// native environment, which .NET's Environment.SetEnvironmentVariable never changes — that would
/// make the socket untestable and invisible to the caller. The protocol is documented as stable.
/// Without NOTIFY_SOCKET (not started by systemd, or Type≠notify) every call is a no-op.
/// </summary>
public sealed class SdNotify : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;

    /// <param name="socketPath">The NOTIFY_SOCKET value; null or empty: every call does nothing.</param>
    /// <param name="watchdogUsec">WATCHDOG_USEC; null or unparsable: no watchdog.</param>
    /// <param name="watchdogPid">WATCHDOG_PID: when set and not our pid, the watchdog is someone else's.</param>
    public SdNotify(string? socketPath, string? watchdogUsec = null, string? watchdogPid = null)
    {
        if (!string.IsNullOrEmpty(socketPath))
        {
            // Abstract sockets: '@' stands for the leading NUL byte.
            _endpoint = new UnixDomainSocketEndPoint(socketPath[0] == '@' ? "\0" + socketPath[1..] : socketPath);
            _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        }

        bool ours = string.IsNullOrEmpty(watchdogPid) ||
                    (int.TryParse(watchdogPid, out int pid) && pid == Environment.ProcessId);
        if (ours && ulong.TryParse(watchdogUsec, out ulong usec) && usec > 0)
            WatchdogInterval = TimeSpan.FromMicroseconds(usec);
    }

    /// <summary>The process-wide notifier, from this process's environment as systemd set it.</summary>
    public static SdNotify Default { get; } = new(
        Environment.GetEnvironmentVariable("NOTIFY_SOCKET"),
        Environment.GetEnvironmentVariable("WATCHDOG_USEC"),
        Environment.GetEnvironmentVariable("WATCHDOG_PID"));

    /// <summary>True when a notification socket was given.</summary>
    public bool Enabled => _socket is not null;

    /// <summary>WatchdogSec= of the unit, or null when no watchdog is expected. Ping at least twice per interval.</summary>
    public TimeSpan? WatchdogInterval { get; }

    /// <summary>Start-up is complete: systemd orders Before= units (target.service) after this.</summary>
    public void Ready(string status) => Send($"READY=1\nSTATUS={OneLine(status)}");

    /// <summary>Graceful stop began (SIGTERM).</summary>
    public void Stopping(string? status = null) =>
        Send(status is null ? "STOPPING=1" : $"STOPPING=1\nSTATUS={OneLine(status)}");

    /// <summary>SIGHUP reload began; finish with <see cref="ReloadDone"/>.</summary>
    public void Reloading(string? status = null) =>
        Send(status is null ? "RELOADING=1" : $"RELOADING=1\nSTATUS={OneLine(status)}");

    public void ReloadDone(string status) => Send($"READY=1\nSTATUS={OneLine(status)}");

    /// <summary>Free-form status shown by systemctl status.</summary>
    public void Status(string text) => Send($"STATUS={OneLine(text)}");

    /// <summary>Keep-alive ping; call from the event loop so a hung loop gets the service restarted.</summary>
    public void Watchdog() => Send("WATCHDOG=1");

    /// <summary>Sends a raw notification; returns false when disabled or when the send failed.</summary>
    public bool Send(string state)
    {
        if (_socket is null) return false;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), SocketFlags.None, _endpoint!);
            return true;
        }
        catch (SocketException)
        {
            // systemd gone or socket full: notifications are advisory, never fatal.
            return false;
        }
    }

    // A newline would start a new KEY= assignment.
    private static string OneLine(string text) => text.Replace('\n', ' ');

    public void Dispose() => _socket?.Dispose();
}
