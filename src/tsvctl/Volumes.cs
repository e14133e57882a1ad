using System.Globalization;
using System.Text.RegularExpressions;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Cli;

/// <summary>Backing files and block devices, and the names and values targetcli is given.</summary>
public static partial class Volumes
{
    /// <summary>"10G", "512M", "4096" (bytes); K/M/G/T are powers of 1024, as targetcli reads them.</summary>
    public static long ParseSize(string text)
    {
        var m = SizeRegex().Match(text.Trim());
        if (!m.Success)
            throw new UsageException($"cannot read size '{text}': use a number of bytes or a number with K, M, G or T");
        long n = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        int shift = m.Groups[2].Value.ToUpperInvariant() switch { "K" => 10, "M" => 20, "G" => 30, "T" => 40, _ => 0 };
        if (n <= 0 || n > (long.MaxValue >> shift))
            throw new UsageException($"size '{text}' is out of range");
        long bytes = n << shift;
        if (bytes % 512 != 0)
            throw new UsageException($"size '{text}' is not a multiple of 512 bytes");
        return bytes;
    }

    [GeneratedRegex("^([0-9]+)([KkMmGgTt]?)(?:i?[Bb])?$")]
    private static partial Regex SizeRegex();

    /// <summary>
    /// The canonical absolute path targetcli and the daemon will see; lvm:VG/NAME is /dev/VG/NAME.
    /// An RBD image, <c>rbd/POOL/IMAGE[;ceph_conf=PATH][;ceph_id=ID]</c>, is the config string's
    /// path and Ceph options, checked by the daemon's own parser (<see cref="Rbd"/> reads it back).
    /// </summary>
    public static string Canonical(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new UsageException("volume path is empty");
        if (LogicalVolume.Parse(path) is { } lv) return lv.DevicePath;
        if (RbdLocation.IsRbd(path)) return CanonicalRbd(path);
        var full = Path.GetFullPath(path);
        if (full.Any(c => char.IsWhiteSpace(c) || c is ';' or ':' or '%'))
            throw new UsageException($"volume path '{full}' contains whitespace, ';', ':' or '%', which a TCMU config string cannot carry");
        return full;
    }

    private static string CanonicalRbd(string volume)
    {
        // initiator= is tsvctl's to add; the other options are not offered for images here.
        if (volume.Split(';').Skip(1).FirstOrDefault(o => !o.Trim().StartsWith("ceph_conf=", StringComparison.OrdinalIgnoreCase) &&
                                                         !o.Trim().StartsWith("ceph_id=", StringComparison.OrdinalIgnoreCase)) is { } other)
            throw new UsageException($"volume '{volume}': '{other}' cannot follow rbd/POOL/IMAGE here, only ceph_conf= and ceph_id=");
        if (!VolumeConfig.TryParse(VolumeConfig.Prefix + volume, out var config, out var reason))
            throw new UsageException($"volume '{volume}': {reason}");
        var rbd = config.Rbd!;
        if (rbd.CephConf is { } conf && conf.Any(c => char.IsWhiteSpace(c) || c is ';' or ':' or '%'))
            throw new UsageException($"ceph_conf={conf} contains whitespace, ';', ':' or '%', which a TCMU config string cannot carry");
        return rbd.Path + (rbd.CephConf is { } c ? $";ceph_conf={c}" : "") +
               (rbd.ClientId != RbdLocation.DefaultClientId ? $";ceph_id={rbd.ClientId}" : "");
    }

    /// <summary>The RBD image a canonical volume names, or null for a file or block device.</summary>
    public static RbdLocation? Rbd(string canonical) =>
        RbdLocation.IsRbd(canonical) ? VolumeConfig.Parse(VolumeConfig.Prefix + canonical).Rbd : null;

    /// <summary>What the daemon and LIO's configuration know a volume by: the path without Ceph's options.</summary>
    public static string Key(string canonical) => canonical.Split(';')[0];

    /// <summary>Size of an existing regular file or block device. A block device that is mounted,
    /// part of another device or a partition of the root disk is refused here already, with the
    /// reason the daemon would log.</summary>
    public static long SizeOf(string path)
    {
        if (BlockDeviceSize(path) is { } device)
        {
            if (TcmuSharedVolume.Backends.BlockDeviceUsage.System.WhyRefused(path) is { } why)
                throw new CliFailure($"{path} is in use: {why}; refusing to export it");
            return device;
        }
        var info = new FileInfo(path);
        if (!info.Exists) throw new CliFailure($"volume '{path}' does not exist (create it: tsvctl volume create {path} --size 10G)");
        if (info.Length == 0) throw new CliFailure($"volume '{path}' is empty");
        return info.Length;
    }

    /// <summary>BLKGETSIZE64 of a block device (an LVM LV), or null when the path is not one.</summary>
    public static unsafe long? BlockDeviceSize(string path)
    {
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NONBLOCK, 0);
        if (fd < 0) return null;
        try
        {
            ulong size = 0;
            return Libc.ioctl(fd, Libc.BLKGETSIZE64, &size) == 0 ? (long)size : null;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Creates a sparse file, mode 0600 (it holds a whole disk); never overwrites anything.</summary>
    public static string Create(string path, long size)
    {
        var full = Canonical(path);
        if (BlockDeviceSize(full) is { } device)
            throw new CliFailure($"'{full}' is a block device of {device} bytes; use it as it is (tsvctl export ... --volume {full})");
        try
        {
            // The daemon's own creation helper: 0600, O_EXCL, no link followed in a sticky
            // world-writable directory; sparse (ftruncate).
            TcmuSharedVolume.Backends.BackingPath.CreateFile(full, size);
        }
        catch (TcmuSharedVolume.Backends.BackingStoreException e) when (e.Errno == Libc.EEXIST)
        {
            throw new CliFailure($"'{full}' already exists; refusing to overwrite it");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliFailure($"cannot create '{full}': {e.Message}");
        }
        return full;
    }

    /// <summary>Backstore name prefix: the file name without extension, in the characters rtslib accepts.</summary>
    public static string DefaultPrefix(string volumePath)
    {
        var name = Rbd(volumePath) is { } rbd ? rbd.Image : Path.GetFileNameWithoutExtension(volumePath);
        var clean = new string(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        return clean.Length == 0 ? "sharedvol" : clean;
    }

    public static string CheckPrefix(string prefix)
    {
        if (prefix.Length == 0 || prefix.Length > 48 || !prefix.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new UsageException($"name prefix '{prefix}' must be 1-48 letters, digits, '-' or '_'");
        return prefix;
    }

    /// <summary>iSCSI names (RFC 3720 3.2.6): iqn.yyyy-mm.reversed.domain[:anything], eui.16hex, naa.16/32hex; lower case.</summary>
    public static string CheckIscsiName(string name, string what)
    {
        var lower = name.Trim().ToLowerInvariant();
        if (!IscsiNameRegex().IsMatch(lower))
            throw new UsageException($"{what} '{name}' is not an iSCSI name (iqn.YYYY-MM.domain[:id], eui.<16 hex> or naa.<16|32 hex>)");
        return lower;
    }

    [GeneratedRegex(@"^(iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.\-]*(:[a-z0-9.:\-]+)?|eui\.[0-9a-f]{16}|naa\.([0-9a-f]{16}|[0-9a-f]{32}))$")]
    private static partial Regex IscsiNameRegex();

    /// <summary>rtslib refuses ':' in a config string (docs/tcmu.md §6), so the daemon reads %3A as ':'.</summary>
    public static string EscapeInitiator(string iqn) => iqn.Replace(":", "%3A", StringComparison.Ordinal);

    public static (string Address, int Port) ParsePortal(string portal)
    {
        int colon = portal.LastIndexOf(':');
        string address = colon < 0 ? portal : portal[..colon];
        string port = colon < 0 ? "3260" : portal[(colon + 1)..];
        if (address.StartsWith('[') && address.EndsWith(']')) address = address[1..^1];
        if (!System.Net.IPAddress.TryParse(address, out _) || !int.TryParse(port, out int p) || p is < 1 or > 65535)
            throw new UsageException($"portal '{portal}' must be IP[:PORT], e.g. 127.0.0.1:3260");
        return (address, p);
    }
}
