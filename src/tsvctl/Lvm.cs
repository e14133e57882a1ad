using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace TcmuSharedVolume.Cli;

/// <summary>What one external command did.</summary>
public readonly record struct ToolResult(int ExitCode, string Stdout, string Stderr)
{
    public bool Ok => ExitCode == 0;
}

/// <summary>Runs a program with an argument list (never through a shell); tests script the answers.</summary>
public interface ICommandRunner
{
    ToolResult Run(string executable, IReadOnlyList<string> arguments);
}

public sealed class ProcessRunner : ICommandRunner
{
    public ToolResult Run(string executable, IReadOnlyList<string> arguments)
    {
        var psi = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // no tool waits on a question: --yes or fail
            UseShellExecute = false,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        // lvm warns on stderr about every descriptor it inherits; none of ours matters to it.
        psi.Environment["LVM_SUPPRESS_FD_WARNINGS"] = "1";
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            string package = executable is "rbd" or "rados" ? "ceph-common" : "lvm2";
            return new ToolResult(127, "", $"cannot run {executable}: {e.Message} (install {package})");
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            return new ToolResult(process.ExitCode, stdout.Result, stderr.Result);
        }
    }
}

/// <summary>An LVM logical volume named <c>lvm:VG/NAME</c> on tsvctl's command line.</summary>
public readonly partial record struct LogicalVolume(string Group, string Name)
{
    public const string Scheme = "lvm:";

    /// <summary>The device node to export (udev's link to the dm device).</summary>
    public string DevicePath => $"/dev/{Group}/{Name}";

    public override string ToString() => $"{Group}/{Name}";

    /// <summary>"lvm:VG/NAME" → the LV; null when the text does not start with lvm:. A bad name is a usage error.</summary>
    public static LogicalVolume? Parse(string text)
    {
        if (!text.StartsWith(Scheme, StringComparison.Ordinal)) return null;
        var parts = text[Scheme.Length..].Split('/');
        if (parts.Length != 2)
            throw new UsageException($"'{text}' must be lvm:VG/NAME (a volume group and a logical volume name)");
        return new LogicalVolume(CheckName(parts[0], "volume group"), CheckName(parts[1], "logical volume"));
    }

    /// <summary>LVM's own rule (lvm(8) VALID NAMES), which also keeps ':' ';' '%' and blanks out of the config string.</summary>
    public static string CheckName(string name, string what)
    {
        if (!NameRegex().IsMatch(name) || name is "." or ".." || name.Length > 127)
            throw new UsageException($"{what} name '{name}' must be 1-127 of a-z A-Z 0-9 + _ . - and not start with '-'");
        return name;
    }

    [GeneratedRegex("^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$")]
    private static partial Regex NameRegex();
}

/// <summary>What lvs says of one LV.</summary>
public sealed record LvInfo(long SizeBytes, string SegmentType, string Pool);

/// <summary>
/// The lvm2 commands tsvctl runs: lvs, lvcreate, lvextend, lvremove. Sizes go in bytes
/// (<c>--size 1073741824b</c>): lvm rounds them up to whole extents, and the size it made is read
/// back. Every failure is one line: what was run, and lvm's own first error line.
/// </summary>
public sealed class Lvm(ICommandRunner runner)
{
    /// <summary>The LV, or null when the volume group has no LV of that name.</summary>
    public LvInfo? Find(LogicalVolume lv)
    {
        var r = runner.Run("lvs", ["--noheadings", "--nosuffix", "--units", "b", "--separator", "|",
            "-o", "lv_size,segtype,pool_lv", lv.ToString()]);
        if (!r.Ok)
        {
            if (r.Stderr.Contains("Failed to find logical volume", StringComparison.Ordinal)) return null;
            if (r.Stderr.Contains("not found", StringComparison.Ordinal) && r.Stderr.Contains("olume group", StringComparison.Ordinal))
                throw new CliFailure($"volume group '{lv.Group}' not found (vgs lists them)");
            throw Failed("lvs", r);
        }
        var f = r.Stdout.Trim().Split('|');
        if (f.Length < 3 || !long.TryParse(f[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long size))
            throw new CliFailure($"lvs {lv}: cannot read its answer '{r.Stdout.Trim()}'");
        return new LvInfo(size, f[1].Trim(), f[2].Trim());
    }

    /// <summary>The LV behind a device path (/dev/VG/NAME, /dev/mapper/VG-NAME, /dev/dm-N), or null if it is none.</summary>
    public LogicalVolume? OfDevice(string path)
    {
        var r = runner.Run("lvs", ["--noheadings", "--separator", "|", "-o", "vg_name,lv_name", path]);
        if (!r.Ok) return null;
        var f = r.Stdout.Trim().Split('|');
        return f.Length == 2 ? new LogicalVolume(f[0].Trim(), f[1].Trim()) : null;
    }

    /// <summary>Creates the LV, thick or thin in <paramref name="thinPool"/>; never touches one that exists.</summary>
    public LvInfo Create(LogicalVolume lv, long sizeBytes, string? thinPool)
    {
        if (Find(lv) is not null)
            throw new CliFailure($"logical volume {lv} already exists; refusing to touch it (tsvctl volume resize grows it)");
        List<string> args = ["--yes", "--wipesignatures", "y", "--activate", "y", "--name", lv.Name];
        if (thinPool is not null)
        {
            var pool = new LogicalVolume(lv.Group, thinPool);
            var info = Find(pool) ?? throw new CliFailure($"thin pool {pool} does not exist (lvcreate --type thin-pool -L SIZE -n {thinPool} {lv.Group})");
            if (info.SegmentType != "thin-pool")
                throw new CliFailure($"{pool} is not a thin pool (its type is {info.SegmentType})");
            args.AddRange(["--type", "thin", "--virtualsize", Bytes(sizeBytes), "--thinpool", thinPool]);
        }
        else
        {
            // --zero y: the first 4 KiB of a new thick LV are zeroed, so no old file system
            // signature from a removed LV shows through to the initiators.
            args.AddRange(["--zero", "y", "--size", Bytes(sizeBytes)]);
        }
        args.Add(lv.Group);
        Check("lvcreate", runner.Run("lvcreate", args));
        return Find(lv) ?? throw new CliFailure($"lvcreate reported success but lvs does not list {lv}");
    }

    /// <summary>Grows the LV to at least <paramref name="sizeBytes"/>; returns the size lvm made.</summary>
    public long Extend(LogicalVolume lv, long sizeBytes)
    {
        var info = Find(lv) ?? throw new CliFailure($"logical volume {lv} does not exist");
        if (sizeBytes < info.SizeBytes)
            throw new CliFailure($"{lv} has {info.SizeBytes} bytes; shrinking to {sizeBytes} is refused: the initiators' data behind the new end would be lost");
        if (sizeBytes > info.SizeBytes)
            Check("lvextend", runner.Run("lvextend", ["--yes", "--size", Bytes(sizeBytes), lv.ToString()]));
        return (Find(lv) ?? throw new CliFailure($"{lv} disappeared while it was being extended")).SizeBytes;
    }

    public void Remove(LogicalVolume lv)
    {
        if (Find(lv) is null) throw new CliFailure($"logical volume {lv} does not exist");
        Check("lvremove", runner.Run("lvremove", ["--yes", lv.ToString()]));
    }

    private static string Bytes(long size) => size.ToString(CultureInfo.InvariantCulture) + "b";

    private static void Check(string what, ToolResult r)
    {
        if (!r.Ok) throw Failed(what, r);
    }

    private static CliFailure Failed(string what, ToolResult r)
    {
        var line = (r.Stderr + "\n" + r.Stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .FirstOrDefault(l => !l.StartsWith("WARNING", StringComparison.Ordinal)) ?? "(no output)";
        return new CliFailure($"{what} failed (exit {r.ExitCode}): {line}");
    }
}
