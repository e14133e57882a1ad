using System.Reflection;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.Configuration;

namespace TcmuSharedVolume.Daemon;

public static class Program
{
    public static int Main(string[] args)
    {
        string configPath = DaemonOptions.DefaultPath;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-h" or "--help":
                    Console.Out.Write(Usage);
                    return 0;
                case "-V" or "--version":
                    Console.Out.WriteLine($"tcmu-shared-volume {Version}");
                    return 0;
                case "-c" or "--config" when i + 1 < args.Length:
                    configPath = args[++i];
                    break;
                default:
                    Console.Error.WriteLine($"tcmu-shared-volume: unknown argument '{args[i]}' (see --help)");
                    return 2;
            }
        }

        DaemonOptions options;
        try
        {
            options = DaemonOptions.Load(configPath);
        }
        catch (ConfigurationException e)
        {
            Log.Error($"configuration: {e.Message}");
            return 1;
        }
        Log.Level = options.LogLevel;

        using var stop = new CancellationTokenSource();
        var daemon = new Daemon(options, () => DaemonOptions.Load(configPath));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => { c.Cancel = true; daemon.RequestReload(); });

        Log.Notice($"tcmu-shared-volume {Version} starting (handler subtype 'sharedvol', state in {options.StateDirectory})");
        try
        {
            int rc = daemon.Run(stop.Token);
            Log.Info($"exiting with status {rc}");
            return rc;
        }
        catch (Exception e)
        {
            // Last resort: systemd restarts us (Restart=on-failure); the kernel keeps the rings.
            Log.Error($"fatal: {e}");
            return 1;
        }
    }

    /// <summary>Runs from the process's start: uptime for the metrics and the status.</summary>
    public static readonly System.Diagnostics.Stopwatch Started = System.Diagnostics.Stopwatch.StartNew();

    public static string Version =>
        typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private const string Usage = """
        Usage: tcmu-shared-volume [--config FILE] [--help] [--version]

        Serves LIO TCMU backstores whose config string starts with 'sharedvol/' as shared
        volumes with their own SCSI-3 persistent reservation table. Run as root, in the
        foreground; under systemd it logs to the journal. SIGHUP reloads the configuration,
        SIGTERM finishes in-flight commands, flushes and exits.

        Options:
          -c, --config F   configuration file (default /etc/tcmu-shared-volume/tcmu-shared-volume.conf;
                           a missing file means built-in defaults)
          -h, --help       show this help
          -V, --version    show the version

        Exit status: 0 after a clean stop; 1 on a fatal error; 2 on a bad argument; 3 when
        another TCMU daemon runs (another tcmu-shared-volume holds /run/tcmu-shared-volume.lock,
        tcmu-runner holds /run/tcmu.lock, or org.kernel.TCMUService1 has another owner).

        """;
}
