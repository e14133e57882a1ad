using System.Reflection;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Diagnostics;

namespace TcmuSharedVolume.Daemon;

public static class Program
{
    public static int Main(string[] args)
    {
        foreach (var arg in args)
        {
            switch (arg)
            {
                case "-h" or "--help":
                    Console.Out.Write(Usage);
                    return 0;
                case "-V" or "--version":
                    Console.Out.WriteLine($"tcmu-shared-volume {Version}");
                    return 0;
                default:
                    Console.Error.WriteLine($"tcmu-shared-volume: unknown argument '{arg}' (see --help)");
                    return 2;
            }
        }

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

        Log.Notice($"tcmu-shared-volume {Version} starting (handler subtype 'sharedvol')");
        Log.Info("no data path yet: this build only logs what it would serve");
        stop.Token.WaitHandle.WaitOne();
        Log.Notice("stopping");
        return 0;
    }

    public static string Version =>
        typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private const string Usage = """
        Usage: tcmu-shared-volume [--help] [--version]

        Serves LIO TCMU backstores whose config string starts with 'sharedvol/' as shared
        volumes with their own SCSI-3 persistent reservation table. Run as root, in the
        foreground; under systemd it logs to the journal.

        Options:
          -h, --help       show this help
          -V, --version    show the version

        """;
}
