using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// Why a block device must not be served, read from the kernel's own records before it is
/// opened: mounted (<c>/proc/self/mountinfo</c>), a component of another device
/// (<c>holders/</c> in sysfs: an LVM PV, a dm-crypt or multipath member, an md array), or a
/// partition of the disk that holds the root file system. The O_EXCL open that follows catches
/// the rest (swap, another exclusive opener) and closes the race between this look and the open;
/// this look only makes the refusal say why.
/// </summary>
public sealed class BlockDeviceUsage(string sysRoot = "/sys", string procRoot = "/proc", (uint Major, uint Minor)? rootDevice = null)
{
    public static BlockDeviceUsage System { get; } = new();

    /// <summary>The same for a path (links followed): null when it is not a block device or nothing visible uses it.</summary>
    public string? WhyRefused(string path) =>
        DeviceNumberOf(path) is var (major, minor) ? WhyRefused(major, minor) : null;

    /// <summary>One sentence naming what uses the device, or null when nothing visible does.</summary>
    public string? WhyRefused(uint major, uint minor)
    {
        string dev = $"{major}:{minor}";
        if (MountPointOf(dev) is { } mountPoint)
            return $"it is mounted on {mountPoint}";
        if (Holders(dev) is { Count: > 0 } holders)
            return $"it is a component of {string.Join(", ", holders)} (holders/ in sysfs: an LVM physical volume, a device-mapper or md member)";
        if (RootDisks() is { Count: > 0 } rootDisks && NodeOf(dev) is { } node)
        {
            string name = Path.GetFileName(node);
            if (File.Exists(Path.Combine(node, "partition")) && Path.GetDirectoryName(node) is { } whole && rootDisks.Contains(whole))
                return $"it is partition {name} of {Path.GetFileName(whole)}, the disk that holds the root file system";
            if (rootDisks.Contains(node))
                return $"{name} is the disk that holds the root file system";
        }
        return null;
    }

    /// <summary>The device's directory under sysfs <c>devices/</c> (dev/block/M:m resolved), or null.</summary>
    private string? NodeOf(string dev)
    {
        var link = new DirectoryInfo(Path.Combine(sysRoot, "dev", "block", dev));
        if (!link.Exists) return null;
        return (link.ResolveLinkTarget(returnFinalTarget: true) ?? link).FullName.TrimEnd('/');
    }

    private string? MountPointOf(string dev)
    {
        foreach (var fields in MountInfo())
            if (fields[2] == dev) return fields[4];
        return null;
    }

    /// <summary>mountinfo lines split into fields, octal escapes (\040) decoded.</summary>
    private IEnumerable<string[]> MountInfo()
    {
        string[] lines;
        try { lines = File.ReadAllLines(Path.Combine(procRoot, "self", "mountinfo")); }
        catch (IOException) { yield break; }
        catch (UnauthorizedAccessException) { yield break; }
        foreach (var line in lines)
        {
            var f = line.Split(' ');
            if (f.Length < 5) continue;
            for (int i = 0; i < f.Length; i++) f[i] = Unescape(f[i]);
            yield return f;
        }
    }

    private static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var b = new System.Text.StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && IsOctal(s, i + 1))
            {
                b.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else b.Append(s[i]);
        }
        return b.ToString();
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s[at] is >= '0' and <= '3' && s[at + 1] is >= '0' and <= '7' && s[at + 2] is >= '0' and <= '7';

    /// <summary>"dm-3 (vg-data)" for each holder; the dm name where device-mapper has one.</summary>
    private List<string> Holders(string dev)
    {
        var result = new List<string>();
        var dir = Path.Combine(sysRoot, "dev", "block", dev, "holders");
        if (!Directory.Exists(dir)) return result;
        foreach (var holder in Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(holder);
            string dmName = Path.Combine(holder, "dm", "name");
            result.Add(File.Exists(dmName) ? $"{name} ({File.ReadAllText(dmName).Trim()})" : name);
        }
        return result;
    }

    /// <summary>
    /// The whole disks (sysfs directories) under the root file system: its device, through
    /// device-mapper's slaves/ (root on LVM, dm-crypt) down to the disks, each partition replaced
    /// by its disk. Empty when root is not on a block device (tmpfs, overlay, NFS).
    /// </summary>
    private HashSet<string> RootDisks()
    {
        var disks = new HashSet<string>(StringComparer.Ordinal);
        if (RootDeviceNumber() is not { } root || root.Major == 0) return disks;
        var pending = new Stack<string>();
        if (NodeOf($"{root.Major}:{root.Minor}") is { } start) pending.Push(start);
        while (pending.TryPop(out var node) && disks.Count < 64)
        {
            var slaves = Path.Combine(node, "slaves");
            var below = Directory.Exists(slaves) ? Directory.GetFileSystemEntries(slaves) : [];
            if (below.Length == 0)
            {
                disks.Add(File.Exists(Path.Combine(node, "partition")) ? Path.GetDirectoryName(node)! : node);
                continue;
            }
            foreach (var s in below)
            {
                var d = new DirectoryInfo(s);
                pending.Push((d.ResolveLinkTarget(returnFinalTarget: true) ?? d).FullName.TrimEnd('/'));
            }
        }
        return disks;
    }

    private unsafe (uint Major, uint Minor)? RootDeviceNumber()
    {
        if (rootDevice is { } given) return given;
        int fd = Libc.open("/", Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            StatBuffer st;
            if (Libc.fstat(fd, &st) < 0) return null;
            uint major = (uint)(((st.Dev >> 8) & 0xFFF) | ((st.Dev >> 32) & ~0xFFFUL));
            uint minor = (uint)((st.Dev & 0xFF) | ((st.Dev >> 12) & ~0xFFUL));
            if (major != 0) return (major, minor);
        }
        finally
        {
            Libc.close(fd);
        }
        // btrfs and others report an anonymous st_dev: the mount's source device then says.
        foreach (var f in MountInfo())
        {
            if (f[4] != "/") continue;
            int dash = Array.IndexOf(f, "-");
            if (dash < 0 || dash + 2 >= f.Length || !f[dash + 2].StartsWith("/dev/", StringComparison.Ordinal)) continue;
            return DeviceNumberOf(f[dash + 2]);
        }
        return null;
    }

    private static unsafe (uint, uint)? DeviceNumberOf(string path)
    {
        int fd = Libc.open(path, Libc.O_PATH | Libc.O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            StatBuffer st;
            return Libc.fstat(fd, &st) == 0 && st.IsBlockDevice ? (st.RdevMajor, st.RdevMinor) : null;
        }
        finally
        {
            Libc.close(fd);
        }
    }
}
