using System.Globalization;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Linux.Discovery;

/// <summary>One TCMU device of ours as sysfs shows it (docs/tcmu.md §2).</summary>
/// <param name="UioIndex">N of <c>/sys/class/uio/uioN</c>.</param>
/// <param name="Minor">Minor of <c>/dev/uioN</c> (from the <c>dev</c> file; N when it is missing).</param>
/// <param name="HbaIndex">N of configfs <c>core/user_N</c>.</param>
/// <param name="DeviceName">The backstore's name in configfs.</param>
/// <param name="DevConfig">The full config string, <c>sharedvol/…</c>.</param>
/// <param name="MapSize">Size of map0 (mailbox + ring + data area) in bytes.</param>
public sealed record UioDevice(int UioIndex, int Minor, int HbaIndex, string DeviceName, string DevConfig, long MapSize)
{
    public string DevicePath => $"/dev/uio{Minor}";

    /// <summary>The UIO name the kernel reports, which netlink events carry as DEVICE.</summary>
    public string UioName => $"{UioDeviceName.Prefix}{HbaIndex}/{DeviceName}/{DevConfig}";
}

/// <summary>
/// Finds the TCMU devices that belong to this daemon by scanning sysfs, the way libtcmu does at
/// start (docs/tcmu.md §2): every <c>uio*/name</c> that starts with <c>tcm-user/</c> and whose
/// dev_config starts with <c>sharedvol/</c>. Devices of other handlers are skipped silently.
/// </summary>
public sealed class UioDiscovery(string sysClassUio = UioDiscovery.DefaultRoot)
{
    public const string DefaultRoot = "/sys/class/uio";

    public string Root { get; } = sysClassUio;

    public IReadOnlyList<UioDevice> Scan()
    {
        var found = new List<UioDevice>();
        if (!Directory.Exists(Root)) return found; // uio not loaded: no devices yet
        foreach (var dir in Directory.EnumerateFileSystemEntries(Root, "uio*"))
        {
            if (TryRead(dir) is { } device)
                found.Add(device);
        }
        found.Sort((a, b) => a.UioIndex.CompareTo(b.UioIndex));
        return found;
    }

    /// <summary>The device at <c>uioN</c>, or null when it is gone or not ours.</summary>
    public UioDevice? Find(int uioIndex) => TryRead(Path.Combine(Root, $"uio{uioIndex}"));

    /// <summary>The device of ours with this UIO minor (netlink events name devices by minor).</summary>
    public UioDevice? FindByMinor(int minor) => Scan().FirstOrDefault(d => d.Minor == minor);

    private static UioDevice? TryRead(string dir)
    {
        var entry = Path.GetFileName(dir);
        if (!int.TryParse(entry.AsSpan(3), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            return null;
        var name = ReadOrNull(Path.Combine(dir, "name"));
        if (!UioDeviceName.TryParse(name, out var hba, out var device, out var config) || !VolumeConfig.IsOurs(config))
            return null;
        int minor = index;
        if (ReadOrNull(Path.Combine(dir, "dev")) is { } dev)
        {
            int colon = dev.IndexOf(':');
            if (colon > 0 && int.TryParse(dev.AsSpan(colon + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var m))
                minor = m;
        }
        long mapSize = ParseHex(ReadOrNull(Path.Combine(dir, "maps", "map0", "size")));
        return new UioDevice(index, minor, hba, device, config, mapSize);
    }

    /// <summary>sysfs prints map sizes with <c>%pa</c>: <c>0x</c> and 16 hex digits.</summary>
    internal static long ParseHex(string? text)
    {
        if (text is null) return 0;
        var s = text.AsSpan().Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        return long.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v) ? v : 0;
    }

    private static string? ReadOrNull(string path)
    {
        try { return File.ReadAllText(path).TrimEnd('\n'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}
