using System.Diagnostics;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>The one-node Ceph of scripts/ceph/start.sh for the benchmarks that need RBD or RADOS.</summary>
internal static class Ceph
{
    /// <summary>scripts/ceph/start.sh (idempotent); its last line is the ceph.conf. Names the
    /// tests' image, which exists once they ran: start.sh remakes a cluster that lacks the image it
    /// is given, so a benchmark's own images are made with <see cref="EnsureImage"/>.</summary>
    public static string Start()
    {
        string? root = null;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null && root is null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "TcmuSharedVolume.sln"))) root = d.FullName;
        if (root is null) throw new InvalidOperationException($"no TcmuSharedVolume.sln above {AppContext.BaseDirectory}");
        var (code, stdout, stderr) = Run(Path.Combine(root, "scripts", "ceph", "start.sh"), [], ("IMAGE", "tsv-rbd-tests"));
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        if (code != 0 || last is null || !File.Exists(last))
            throw new InvalidOperationException($"scripts/ceph/start.sh could not start Ceph (exit {code}):\n{stdout}{stderr}");
        return last;
    }

    /// <summary>rbd/<paramref name="image"/>, made if missing.</summary>
    public static void EnsureImage(string conf, string image, string size)
    {
        if (Run("rbd", ["-c", conf, "info", $"rbd/{image}"]).Code == 0) return;
        var (code, stdout, stderr) = Run("rbd", ["-c", conf, "create", "--size", size, $"rbd/{image}"]);
        if (code != 0) throw new InvalidOperationException($"rbd create rbd/{image}: {stdout}{stderr}");
    }

    /// <summary>A fresh rbd/<paramref name="image"/>, without the shared reservation table of an earlier run.</summary>
    public static void RecreateImage(string conf, string image, string size)
    {
        Run("rbd", ["-c", conf, "rm", "--no-progress", $"rbd/{image}"]);
        Run("rados", ["-c", conf, "-p", "rbd", "rm", "tsv.pr." + image]);
        EnsureImage(conf, image, size);
    }

    private static (int Code, string Stdout, string Stderr) Run(string file, string[] args, (string Key, string Value) env = default)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env.Key is not null) psi.Environment[env.Key] = env.Value;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }
}
