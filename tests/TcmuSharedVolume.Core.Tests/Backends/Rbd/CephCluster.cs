using System.Diagnostics;
using System.Text;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>
/// The one-node Ceph of scripts/ceph/start.sh, started (or found running) once per test run.
/// If it cannot start, every test of the collection fails with the script's output: these tests
/// are the proof that the RBD store works against a real cluster, so they never skip.
/// Each test makes its own images (<see cref="CreateImage"/>), removed at the end. The cluster
/// is left running for the other test assemblies and the next run; <c>make ceph-stop</c> stops it.
/// </summary>
public sealed class CephCluster : IDisposable
{
    public const string Pool = "rbd";
    private const string FixtureImage = "tsv-rbd-tests";
    private readonly List<string> _images = [];

    public CephCluster()
    {
        var root = RepositoryRoot();
        var script = Path.Combine(root, "scripts", "ceph", "start.sh");
        int code;
        string stdout, stderr;
        // Test assemblies run at once (Core, Linux, tsvctl), each with this fixture: one starts
        // the cluster, the others wait and find it up.
        using (StartLock())
            (code, stdout, stderr) = Exec(script, [], TimeSpan.FromMinutes(15), ("IMAGE", FixtureImage));
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (code != 0 || lines.Length == 0 || !File.Exists(lines[^1]))
            throw new InvalidOperationException(
                $"the RBD tests need Ceph, and {script} could not start it (exit {code}).\nstdout:\n{stdout}\nstderr:\n{stderr}");
        ConfPath = lines[^1];
    }

    /// <summary>An exclusive lock across processes (flock: .NET takes one for FileShare.None), held while start.sh runs.</summary>
    private static FileStream StartLock()
    {
        var path = Path.Combine(Path.GetTempPath(), "tsv-ceph-start.lock");
        var deadline = DateTime.UtcNow.AddMinutes(15);
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline) { Thread.Sleep(200); }
        }
    }

    /// <summary>ceph.conf of the test cluster (cephx on; client.admin's keyring is named in it).</summary>
    public string ConfPath { get; }

    /// <summary>A new image of <paramref name="size"/> (rbd create syntax) in <see cref="Pool"/>;
    /// <paramref name="features"/>: rbd create --image-feature (e.g. layering alone, no exclusive lock, for several hosts at once).</summary>
    public string CreateImage(string size = "64M", string? features = null)
    {
        string name = "t-" + Guid.NewGuid().ToString("N")[..12];
        if (features is null) Rbd("create", "--size", size, $"{Pool}/{name}");
        else Rbd("create", "--size", size, "--image-feature", features, $"{Pool}/{name}");
        lock (_images) _images.Add(name);
        return name;
    }

    /// <summary>Runs <c>rbd -c conf ...</c>; fails the test with its output unless it succeeds.</summary>
    public string Rbd(params string[] args) => Tool("rbd", args);

    /// <summary>Runs <c>rados -c conf ...</c>; fails the test with its output unless it succeeds.</summary>
    public string Rados(params string[] args) => Tool("rados", args);

    /// <summary>Runs <c>ceph -c conf ...</c>; fails the test with its output unless it succeeds.</summary>
    public string Ceph(params string[] args) => Tool("ceph", args);

    private string Tool(string tool, string[] args)
    {
        var (code, stdout, stderr) = Exec(tool, ["-c", ConfPath, .. args], TimeSpan.FromSeconds(60));
        if (code != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)}: exit {code}\n{stdout}{stderr}");
        return stdout;
    }

    private static (int Code, string Stdout, string Stderr) Exec(string file, string[] args, TimeSpan timeout, params (string, string)[] env)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot run {file}");
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (-1, stdout.ToString(), stderr + $"\n(killed after {timeout.TotalSeconds} s)");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "TcmuSharedVolume.sln"))) return d.FullName;
        throw new InvalidOperationException($"no TcmuSharedVolume.sln above {AppContext.BaseDirectory}");
    }

    public void Dispose()
    {
        foreach (var image in _images)
        {
            Exec("rbd", ["-c", ConfPath, "rm", "--no-progress", $"{Pool}/{image}"], TimeSpan.FromSeconds(60));
            // The shared reservation table of the cluster tests, if one was made.
            Exec("rados", ["-c", ConfPath, "-p", Pool, "rm", "tsv.pr." + image], TimeSpan.FromSeconds(60));
        }
    }
}

[CollectionDefinition(Name)]
public sealed class CephCollection : ICollectionFixture<CephCluster>
{
    public const string Name = "ceph";
}
