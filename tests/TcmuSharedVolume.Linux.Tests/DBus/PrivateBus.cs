using System.Diagnostics;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Tests.DBus;

/// <summary>
/// A dbus-daemon of the test's own, on a socket in a temp directory, so that tests never touch
/// the machine's system bus. Started by PID, killed by PID.
/// </summary>
public sealed class PrivateBus : IDisposable
{
    private readonly Process _daemon;
    private readonly string _dir;
    private readonly System.Text.StringBuilder _log = new();

    /// <summary>What dbus-daemon logged so far (policy rejections among others).</summary>
    public string DaemonLog
    {
        get { lock (_log) return _log.ToString(); }
    }

    /// <param name="systemPolicyWith">
    /// null: anyone may do anything. Otherwise the default policy of Debian's system bus
    /// (deny own, deny method calls but to the bus driver) plus this policy file.
    /// </param>
    public PrivateBus(string? systemPolicyWith = null)
    {
        _dir = Directory.CreateTempSubdirectory("tsv-dbus-").FullName;
        // Other users may connect (the privilege tests run busctl as nobody); the bus policy decides.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                   UnixFileMode.OtherExecute | UnixFileMode.GroupExecute);
        ConfigPath = Path.Combine(_dir, "bus.conf");
        File.WriteAllText(ConfigPath, $"""
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>system</type>
              <listen>unix:path={_dir}/bus</listen>
              <auth>EXTERNAL</auth>
              {(systemPolicyWith is null ? OpenPolicy : SystemPolicy + $"<include>{systemPolicyWith}</include>")}
            </busconfig>
            """);
        var psi = new ProcessStartInfo("dbus-daemon")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { $"--config-file={ConfigPath}", "--print-address=1", "--nofork" }) psi.ArgumentList.Add(a);
        _daemon = new Process { StartInfo = psi };
        _daemon.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _daemon.Start();
        _daemon.BeginErrorReadLine();
        var line = _daemon.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        if (string.IsNullOrEmpty(line))
            throw new InvalidOperationException($"dbus-daemon did not start: {DaemonLog}");
        Address = line.Trim();
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(Path.Combine(_dir, "bus"), (UnixFileMode)0x1FF); // 0777, like the system bus socket
    }

    private const string OpenPolicy = """
        <policy context="default">
          <allow user="*"/>
          <allow send_destination="*"/>
          <allow own="*"/>
          <allow receive_sender="*"/>
        </policy>
        """;

    // The default context of /usr/share/dbus-1/system.conf.
    private const string SystemPolicy = """
        <policy context="default">
          <allow user="*"/>
          <deny own="*"/>
          <deny send_type="method_call"/>
          <allow send_type="signal"/>
          <allow send_requested_reply="true" send_type="method_return"/>
          <allow send_requested_reply="true" send_type="error"/>
          <allow receive_type="method_call"/>
          <allow receive_type="method_return"/>
          <allow receive_type="error"/>
          <allow receive_type="signal"/>
          <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
          <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
          <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
        </policy>
        """;

    public string Address { get; }

    public string ConfigPath { get; }

    public void Dispose()
    {
        try
        {
            if (!_daemon.HasExited)
            {
                _daemon.Kill();
                _daemon.WaitForExit(5000);
            }
        }
        finally
        {
            _daemon.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>Runs a tool (busctl) against this bus; returns exit code and output.</summary>
    public static (int Exit, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(20_000))
        {
            p.Kill();
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    public (int Exit, string Out, string Err) Busctl(params string[] args) =>
        Run("busctl", [$"--address={Address}", .. args]);

    /// <summary>busctl as user nobody without capabilities (the caller must be root).</summary>
    public (int Exit, string Out, string Err) BusctlAsNobody(params string[] args) =>
        Run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
            "busctl", $"--address={Address}", .. args]);
}

/// <summary>Runs a <see cref="TcmuService"/> on a thread of its own, as sd-bus wants one thread per connection.</summary>
public sealed class ServiceThread : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private Exception? _error;

    /// <param name="ticking">Run wakes every 50 ms to call back even with nothing to do; false: never.</param>
    public ServiceThread(TcmuServiceHandlers handlers, string address, bool ticking = true)
    {
        TimeSpan? tick = ticking ? TimeSpan.FromMilliseconds(50) : null;
        using var started = new ManualResetEventSlim();
        _thread = new Thread(() =>
        {
            TcmuService? service = null;
            try
            {
                service = TcmuService.Start(handlers, address);
                started.Set();
                service.Run(_stop.Token, tick, () => Ticks++);
            }
            catch (Exception e)
            {
                _error = e;
                started.Set();
            }
            finally
            {
                service?.Dispose();
            }
        }) { IsBackground = true, Name = "dbus-test" };
        _thread.Start();
        if (!started.Wait(TimeSpan.FromSeconds(10))) throw new TimeoutException("service did not start");
        if (_error is not null) throw _error;
    }

    /// <summary>Times Run went round its loop (handled what was pending, then waited).</summary>
    public int Ticks { get; private set; }

    /// <summary>Cancels Run; true if its thread ended within <paramref name="timeout"/>.</summary>
    public bool Stop(TimeSpan timeout)
    {
        _stop.Cancel();
        return _thread.Join(timeout);
    }

    public void Dispose()
    {
        Stop(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
