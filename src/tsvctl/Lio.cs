namespace TcmuSharedVolume.Cli;

/// <summary>A TPG LUN of some fabric target that links one of a volume's backstores.</summary>
public sealed record LunLink(string Fabric, string TargetWwn, int Tpgt, int Lun, string Backstore);

/// <summary>
/// Read-only view of LIO's configfs (plus the loopback nexus and the ACLs' CHAP writes), rooted at
/// /sys/kernel/config/target; tests point it at a directory tree of their own.
/// </summary>
public sealed class LioConfigfs(string root = "/sys/kernel/config/target")
{
    public string Root { get; } = root;

    /// <summary>Names of the user backstores whose dev_config is sharedvol/&lt;path&gt;[;...].</summary>
    public IReadOnlyList<string> BackstoresOf(string volumePath)
    {
        var names = new List<string>();
        var core = Path.Combine(Root, "core");
        if (!Directory.Exists(core)) return names;
        foreach (var hba in Directory.EnumerateDirectories(core, "user_*").Order(StringComparer.Ordinal))
        foreach (var dev in Directory.EnumerateDirectories(hba).Order(StringComparer.Ordinal))
        {
            var config = ReadConfig(dev);
            if (config is null || !config.StartsWith("sharedvol/", StringComparison.Ordinal)) continue;
            var path = config["sharedvol/".Length..].Split(';')[0];
            if (path == volumePath) names.Add(Path.GetFileName(dev));
        }
        return names;
    }

    /// <summary>
    /// Writes a backstore's dev_size. The kernel passes it to the daemon (a TCM-USER RECONFIG),
    /// which grows the volume and reports CAPACITY DATA HAS CHANGED on every path; the write
    /// fails with the daemon's errno when it refuses.
    /// </summary>
    public void SetDevSize(string backstore, long sizeBytes)
    {
        var dev = Directory.EnumerateDirectories(Path.Combine(Root, "core"), "user_*")
            .Select(hba => Path.Combine(hba, backstore))
            .FirstOrDefault(Directory.Exists) ?? throw new IOException($"backstore {backstore} is not in {Root}/core");
        WriteAttribute(Path.Combine(dev, "attrib", "dev_size"), sizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string? ReadConfig(string dev)
    {
        // attrib/dev_config holds the string; info's "Config:" on kernels without that attribute.
        var attr = Path.Combine(dev, "attrib", "dev_config");
        if (File.Exists(attr)) return File.ReadAllText(attr).Trim();
        var info = Path.Combine(dev, "info");
        if (!File.Exists(info)) return null;
        foreach (var word in File.ReadAllText(info).Split([' ', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries))
            if (word.StartsWith("sharedvol/", StringComparison.Ordinal)) return word;
        return null;
    }

    /// <summary>Every TPG LUN (iscsi, loopback) whose storage link points at one of <paramref name="backstores"/>.</summary>
    public IReadOnlyList<LunLink> LunsUsing(IReadOnlyCollection<string> backstores)
    {
        var links = new List<LunLink>();
        foreach (var fabric in new[] { "iscsi", "loopback" })
        {
            var dir = Path.Combine(Root, fabric);
            if (!Directory.Exists(dir)) continue;
            foreach (var target in Directory.EnumerateDirectories(dir).Order(StringComparer.Ordinal))
            foreach (var tpg in Directory.EnumerateDirectories(target, "tpgt_*"))
            {
                var lunDir = Path.Combine(tpg, "lun");
                if (!Directory.Exists(lunDir)) continue;
                foreach (var lun in Directory.EnumerateDirectories(lunDir, "lun_*"))
                foreach (var entry in new DirectoryInfo(lun).EnumerateFileSystemInfos())
                {
                    if (entry.LinkTarget is not { } linkTarget) continue;
                    var backstore = Path.GetFileName(linkTarget.TrimEnd('/'));
                    if (!backstores.Contains(backstore)) continue;
                    links.Add(new LunLink(fabric, Path.GetFileName(target), int.Parse(Path.GetFileName(tpg)[5..]),
                        int.Parse(Path.GetFileName(lun)[4..]), backstore));
                }
            }
        }
        return links;
    }

    /// <summary>Number of LUNs in all TPGs of a target, to tell whether removing ours empties it.</summary>
    public int TargetLunCount(string fabric, string wwn)
    {
        var target = Path.Combine(Root, fabric, wwn);
        if (!Directory.Exists(target)) return 0;
        return Directory.EnumerateDirectories(target, "tpgt_*")
            .Select(tpg => Path.Combine(tpg, "lun"))
            .Where(Directory.Exists)
            .Sum(dir => Directory.EnumerateDirectories(dir, "lun_*").Count());
    }

    /// <summary>
    /// tcm_loop needs its TPG nexus before a LUN is linked (docs/testing.md §4). rtslib writes one when it
    /// creates the TPG; this writes <paramref name="initiatorWwn"/> only if none is there, and
    /// returns the nexus in force, or null when configfs is not present (tests, dry machines).
    /// </summary>
    public string? EnsureLoopbackNexus(string targetWwn, string initiatorWwn)
    {
        var tpg = Path.Combine(Root, "loopback", targetWwn, "tpgt_1");
        if (!Directory.Exists(tpg)) return null;
        var nexus = Path.Combine(tpg, "nexus");
        var current = File.Exists(nexus) ? File.ReadAllText(nexus).Trim() : "";
        if (current.Length > 0) return current;
        File.WriteAllText(nexus, initiatorWwn);
        return initiatorWwn;
    }

    /// <summary>
    /// Writes an iSCSI ACL's CHAP credentials straight into configfs, where targetcli's
    /// <c>set auth</c> would write them: a secret on targetcli's command line would be readable by
    /// every local user in /proc/PID/cmdline while it runs. The ACL must exist (targetcli made it).
    /// </summary>
    public void SetAclChap(string targetWwn, int tpgt, ChapCredential chap)
    {
        var auth = Path.Combine(Root, "iscsi", targetWwn, $"tpgt_{tpgt}", "acls", chap.Initiator, "auth");
        WriteAttribute(Path.Combine(auth, "userid"), chap.UserId);
        WriteAttribute(Path.Combine(auth, "password"), chap.Secret);
        if (chap.Mutual)
        {
            WriteAttribute(Path.Combine(auth, "userid_mutual"), chap.MutualUserId!);
            WriteAttribute(Path.Combine(auth, "password_mutual"), chap.MutualSecret!);
        }
    }

    /// <summary>configfs attributes exist once their object does; never create a file here.</summary>
    private static void WriteAttribute(string path, string value)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        var bytes = System.Text.Encoding.UTF8.GetBytes(value);
        f.Write(bytes);
    }
}
