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

    public PrivateBus(string? extraPolicyInclude = null)
    {
        _dir = Directory.CreateTempSubdirectory("tsv-dbus-").FullName;
        ConfigPath = Path.Combine(_dir, "bus.conf");
        File.WriteAllText(ConfigPath, $"""
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>system</type>
              <listen>unix:path={_dir}/bus</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow send_destination="*"/>
                <allow own="*"/>
                <allow receive_sender="*"/>
              </policy>
              {(extraPolicyInclude is null ? "" : $"<include>{extraPolicyInclude}</include>")}
            </busconfig>
            """);
        var psi = new ProcessStartInfo("dbus-daemon")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { $"--config-file={ConfigPath}", "--print-address=1", "--nofork" }) psi.ArgumentList.Add(a);
        _daemon = Process.Start(psi)!;
        var line = _daemon.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        if (string.IsNullOrEmpty(line))
            throw new InvalidOperationException($"dbus-daemon did not start: {_daemon.StandardError.ReadToEnd()}");
        Address = line.Trim();
    }

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
}

/// <summary>Runs a <see cref="TcmuService"/> on a thread of its own, as sd-bus wants one thread per connection.</summary>
public sealed class ServiceThread : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private Exception? _error;

    public ServiceThread(TcmuServiceHandlers handlers, string address)
    {
        using var started = new ManualResetEventSlim();
        _thread = new Thread(() =>
        {
            TcmuService? service = null;
            try
            {
                service = TcmuService.Start(handlers, address);
                started.Set();
                service.Run(_stop.Token, TimeSpan.FromMilliseconds(50), () => Ticks++);
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

    public int Ticks { get; private set; }

    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
