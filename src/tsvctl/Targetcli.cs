using System.Diagnostics;

namespace TcmuSharedVolume.Cli;

/// <summary>What one targetcli command did.</summary>
public readonly record struct TargetcliResult(bool Ok, string Output);

/// <summary>
/// Runs one targetcli command line (a path and a command, e.g.
/// <c>/iscsi create wwn=iqn...</c>). An interface so that tests check the exact sequence and
/// the rollback without targetcli or a kernel target.
/// </summary>
public interface ITargetcli
{
    TargetcliResult Run(string command);
}

/// <summary>The real targetcli, one process per command.</summary>
public sealed class ProcessTargetcli(string executable = "targetcli") : ITargetcli
{
    public TargetcliResult Run(string command)
    {
        var psi = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // targetcli joins its arguments with spaces and parses the line itself; our values hold no spaces.
        foreach (var word in command.Split(' ', StringSplitOptions.RemoveEmptyEntries)) psi.ArgumentList.Add(word);
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new TargetcliResult(false, $"cannot run {executable}: {e.Message} (install targetcli-fb)");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            string output = (stdout.Result + stderr.Result).Trim();
            // Some targetcli errors are only logged and the exit status stays 0.
            bool logged = output.Split('\n').Any(l => l.TrimStart().StartsWith("Error", StringComparison.OrdinalIgnoreCase) ||
                                                      l.Contains("No such path", StringComparison.Ordinal));
            return new TargetcliResult(process.ExitCode == 0 && !logged, output);
        }
    }
}
