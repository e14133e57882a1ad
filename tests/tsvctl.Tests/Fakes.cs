using TcmuSharedVolume.Cli;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli.Tests;

/// <summary>Records every targetcli command; fails the ones a test names.</summary>
public sealed class FakeTargetcli : ITargetcli
{
    public List<string> Commands { get; } = [];
    public Func<string, bool> Fails { get; set; } = _ => false;
    public Action<string>? OnRun { get; set; }

    public TargetcliResult Run(string command)
    {
        Commands.Add(command);
        OnRun?.Invoke(command);
        return Fails(command) ? new TargetcliResult(false, "Error: simulated failure\nmore detail") : new TargetcliResult(true, "Created.");
    }
}

/// <summary>
/// lvm2 as tsvctl sees it: one volume group "vg" with a thin pool "pool", LVs in a dictionary,
/// extents of 4 MiB. Records every command line; <see cref="Fail"/> makes one tool fail.
/// </summary>
public sealed class FakeLvm : ICommandRunner
{
    private const long Extent = 4 << 20;
    public Dictionary<string, (long Size, string Type)> Volumes { get; } = new() { ["vg/pool"] = (1L << 30, "thin-pool") };
    public List<string> Commands { get; } = [];
    public string? Fail { get; set; }

    public ToolResult Run(string executable, IReadOnlyList<string> args)
    {
        Commands.Add(executable + " " + string.Join(' ', args));
        if (executable == Fail) return new ToolResult(5, "", "  WARNING: noise\n  Insufficient free space: 256 extents needed, but only 10 available\n");
        string Value(string option) => args[args.ToList().IndexOf(option) + 1];
        static long Bytes(string size) => (long.Parse(size.TrimEnd('b')) + Extent - 1) / Extent * Extent;
        switch (executable)
        {
            case "lvs":
            {
                var name = args[^1];
                if (name.StartsWith("/dev/", StringComparison.Ordinal))
                {
                    var key = name["/dev/".Length..];
                    return Volumes.ContainsKey(key)
                        ? new ToolResult(0, "  " + key.Replace('/', '|') + "\n", "")
                        : new ToolResult(5, "", $"  Failed to find physical volume \"{name}\".\n");
                }
                if (!name.StartsWith("vg/", StringComparison.Ordinal))
                    return new ToolResult(5, "", $"  Volume group \"{name.Split('/')[0]}\" not found\n");
                return Volumes.TryGetValue(name, out var lv)
                    ? new ToolResult(0, $"  {lv.Size}|{lv.Type}|{(lv.Type == "thin" ? "pool" : "")}\n", "")
                    : new ToolResult(5, "", $"  Failed to find logical volume \"{name}\"\n");
            }
            case "lvcreate":
            {
                var name = $"{args[^1]}/{Value("--name")}";
                if (Volumes.ContainsKey(name)) return new ToolResult(5, "", "  Logical Volume already exists\n");
                Volumes[name] = args.Contains("--virtualsize") ? (Bytes(Value("--virtualsize")), "thin") : (Bytes(Value("--size")), "linear");
                return new ToolResult(0, $"  Logical volume \"{name}\" created.\n", "");
            }
            case "lvextend":
                Volumes[args[^1]] = (Bytes(Value("--size")), Volumes[args[^1]].Type);
                return new ToolResult(0, "", "");
            case "lvremove":
                Volumes.Remove(args[^1]);
                return new ToolResult(0, "", "");
            default:
                return new ToolResult(127, "", $"cannot run {executable}");
        }
    }
}

/// <summary>
/// Ceph's rbd and rados tools as tsvctl sees them, answering as Pacific's do (exit codes, the
/// "rbd: …" error lines, JSON of info and status): pools, images with their sizes and watchers,
/// and other objects of a pool. Records every command line; <see cref="Fail"/> makes one
/// subcommand ("rbd create", "rados rm") fail as an unreachable cluster does.
/// </summary>
public sealed class FakeCeph : ICommandRunner
{
    public HashSet<string> Pools { get; } = ["rbd"];
    public Dictionary<string, long> Images { get; } = [];
    public Dictionary<string, List<string>> Watchers { get; } = [];
    public HashSet<string> Objects { get; } = [];
    public List<string> Commands { get; } = [];
    public string? Fail { get; set; }

    public ToolResult Run(string executable, IReadOnlyList<string> arguments)
    {
        Commands.Add(executable + " " + string.Join(' ', arguments));
        var args = arguments.ToList();
        // Global options first: -c CONF, --id ID, --client_mount_timeout N.
        while (args.Count > 0 && args[0] is "-c" or "--id" or "--client_mount_timeout") args.RemoveRange(0, 2);
        string subcommand = executable + " " + (executable == "rados" ? args[^2] : args[0]);
        if (Fail == subcommand)
            return new ToolResult(1, "", "2026-12-05T09:00:55.592+0000 7fe4bbeaa380  0 monclient(hunting): authenticate timed out after 15\n" +
                                         "rbd: couldn't connect to the cluster!\n");
        string Value(string option) => args[args.IndexOf(option) + 1];
        if (executable == "rados")
        {
            string name = $"{Value("-p")}/{args[^1]}";
            return Objects.Remove(name) ? new ToolResult(0, "", "")
                : new ToolResult(1, "", $"error removing {Value("-p")}>{args[^1]}: (2) No such file or directory\n");
        }
        string spec = args[^1];
        string pool = spec.Split('/')[0], image = spec.Split('/')[1];
        if (!Pools.Contains(pool)) return new ToolResult(2, "", $"rbd: error opening pool '{pool}': (2) No such file or directory\n");
        bool exists = Images.TryGetValue(spec, out long size);
        var missing = new ToolResult(2, "", $"rbd: error opening image {image}: (2) No such file or directory\n");
        switch (args[0])
        {
            case "info":
                return exists
                    ? new ToolResult(0, $"{{\"name\":\"{image}\",\"id\":\"10183dd0dcee\",\"size\":{size},\"objects\":1,\"order\":22,\"features\":[\"layering\"]}}\n", "")
                    : missing;
            case "create":
                if (exists)
                    return new ToolResult(17, "", "2026-12-05T08:33:21.769+0000 7fef64651380 -1 librbd: rbd image x already exists\nrbd: create error: (17) File exists\n");
                Images[spec] = long.Parse(Value("--size").TrimEnd('B'));
                return new ToolResult(0, "", "");
            case "resize":
                if (!exists) return missing;
                long to = long.Parse(Value("--size").TrimEnd('B'));
                if (to < size) return new ToolResult(22, "", "rbd: shrinking an image is only allowed with the --allow-shrink flag\n");
                Images[spec] = to;
                return new ToolResult(0, "", "");
            case "status":
                if (!exists) return missing;
                var list = Watchers.GetValueOrDefault(spec) ?? [];
                var watchers = list.Select((a, i) => $"{{\"address\":\"{a}\",\"client\":{4100 + i},\"cookie\":94358263775232}}");
                return new ToolResult(0, "{\"watchers\":[" + string.Join(',', watchers) + "]}\n", "");
            case "rm":
                if (!exists) return new ToolResult(2, "", "rbd: delete error: (2) No such file or directory\n");
                if (Watchers.GetValueOrDefault(spec)?.Count > 0) return new ToolResult(16, "", "rbd: error: image still has watchers\n");
                Images.Remove(spec);
                return new ToolResult(0, "", "");
            default:
                return new ToolResult(1, "", $"rbd: unknown command '{args[0]}'\n");
        }
    }
}

/// <summary>lvm2's tools to <see cref="FakeLvm"/>, Ceph's to <see cref="FakeCeph"/>.</summary>
public sealed class FakeTools(FakeLvm lvm, FakeCeph ceph) : ICommandRunner
{
    public ToolResult Run(string executable, IReadOnlyList<string> arguments) =>
        executable is "rbd" or "rados" ? ceph.Run(executable, arguments) : lvm.Run(executable, arguments);
}

public sealed class FakeAdmin(string json) : IDaemonAdmin
{
    public List<(string Volume, bool Confirm)> Cleared { get; } = [];
    public (bool, string) ClearAnswer { get; set; } = (true, "cleared 2 registrations");
    public bool Disposed { get; private set; }

    /// <summary>Statuses to answer first, one per call (status --watch); then the fixed one.</summary>
    public Queue<string> Next { get; } = new();

    public string GetStatusJson() => Next.Count > 0 ? Next.Dequeue() : json;

    public (bool Ok, string Message) ClearReservations(string volume, bool confirm)
    {
        Cleared.Add((volume, confirm));
        return ClearAnswer;
    }

    public void Dispose() => Disposed = true;
}

/// <summary>Answers journalctl with canned output and records the arguments it was given.</summary>
public sealed class FakeJournal(string output = "") : IJournalReader
{
    public string Output { get; set; } = output;
    public List<IReadOnlyList<string>> Calls { get; } = [];

    public string Read(IReadOnlyList<string> arguments)
    {
        Calls.Add(arguments);
        return Output;
    }
}

/// <summary>A temp directory for volumes and a fake configfs tree; the context tsvctl runs in.</summary>
public sealed class Sandbox : IDisposable
{
    private int _wwn;

    public Sandbox()
    {
        Dir = Directory.CreateTempSubdirectory("tsvctl-").FullName;
        Configfs = Path.Combine(Dir, "configfs");
        Directory.CreateDirectory(Configfs);
        Targetcli.OnRun = MakeAclAuthAttributes;
    }

    /// <summary>
    /// What the kernel does when targetcli creates an iSCSI ACL: its auth/ directory appears with
    /// the CHAP attributes (empty here). Tests that replace OnRun do without.
    /// </summary>
    public void MakeAclAuthAttributes(string command)
    {
        var m = System.Text.RegularExpressions.Regex.Match(command, @"^/iscsi/(\S+)/tpg(\d+)/acls create wwn=(\S+)");
        if (!m.Success) return;
        var auth = Path.Combine(Configfs, "iscsi", m.Groups[1].Value, "tpgt_" + m.Groups[2].Value, "acls", m.Groups[3].Value, "auth");
        Directory.CreateDirectory(auth);
        foreach (var name in new[] { "userid", "password", "userid_mutual", "password_mutual", "authenticate_target" })
            File.WriteAllText(Path.Combine(auth, name), "");
    }

    /// <summary>What tsvctl reads for "--chap-secrets -".</summary>
    public string Stdin { get; set; } = "";

    public string Dir { get; }
    public string Configfs { get; }
    public FakeTargetcli Targetcli { get; } = new();
    public FakeLvm Lvm { get; } = new();
    public FakeCeph Ceph { get; } = new();

    /// <summary>The tools tsvctl runs; by default the fakes, or the real ones (against the test Ceph).</summary>
    public ICommandRunner? Tools { get; set; }
    public FakeJournal Journal { get; } = new();
    public List<TimeSpan> Slept { get; } = [];
    public FakeAdmin Admin { get; set; } = new(AdminJsonContext.Serialize(new AdminStatus("0.1.0", [])));
    public StringWriter Out { get; } = new();
    public StringWriter Err { get; } = new();

    public string Volume(string name = "vol1.img", long size = 1 << 30)
    {
        var path = Path.Combine(Dir, name);
        using (var f = File.Create(path)) f.SetLength(size);
        return path;
    }

    public int Run(params string[] args) => TcmuSharedVolume.Cli.Cli.Run(args, new CliContext
    {
        Targetcli = Targetcli,
        Admin = () => Admin,
        Journal = Journal,
        Sleep = (t, _) => Slept.Add(t),
        Configfs = new LioConfigfs(Configfs),
        Commands = Tools ?? new FakeTools(Lvm, Ceph),
        NewNaaWwn = () => $"naa.500140500000000{++_wwn}",
        In = new StringReader(Stdin),
        Out = Out,
        Error = Err,
    });

    /// <summary>A user backstore in the fake configfs with this config string and an empty dev_size.</summary>
    public void Backstore(int hba, string name, string config)
    {
        var dev = Directory.CreateDirectory(Path.Combine(Configfs, "core", $"user_{hba}", name, "attrib"));
        File.WriteAllText(Path.Combine(dev.FullName, "dev_config"), config + "\n");
        File.WriteAllText(Path.Combine(dev.FullName, "dev_size"), "");
    }

    /// <summary>What tsvctl wrote into a backstore's dev_size.</summary>
    public string DevSize(int hba, string name) =>
        File.ReadAllText(Path.Combine(Configfs, "core", $"user_{hba}", name, "attrib", "dev_size"));

    /// <summary>stderr must be exactly one line.</summary>
    public string ErrorLine()
    {
        var lines = Err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("tsvctl: ", lines[0]);
        return lines[0];
    }

    public void Dispose() => Directory.Delete(Dir, true);
}
