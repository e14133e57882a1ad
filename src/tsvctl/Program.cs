namespace TcmuSharedVolume.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["--version"])
        {
            Console.WriteLine("tsvctl 0.1.0");
            return 0;
        }
        // TSVCTL_BUS_ADDRESS: talk to a daemon on a private bus (tests, containers without a system bus).
        string? bus = Environment.GetEnvironmentVariable("TSVCTL_BUS_ADDRESS") is { Length: > 0 } a ? a : null;
        return Cli.Run(args, new CliContext
        {
            Targetcli = new ProcessTargetcli(),
            Admin = () => DBusDaemonAdmin.Connect(bus),
        });
    }
}
