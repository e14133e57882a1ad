namespace TcmuSharedVolume.Cli;

public static class Program
{
    // PLACEHOLDER: the commands land with issue 5.
    public static int Main(string[] args)
    {
        if (args is ["--version"])
        {
            Console.WriteLine("tsvctl 0.1.0");
            return 0;
        }
        Console.Error.WriteLine("tsvctl: no commands yet");
        return 2;
    }
}
