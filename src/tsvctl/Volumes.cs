using System.Globalization;
using System.Text.RegularExpressions;
using TcmuSharedVolume.Interop;

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

    /// <summary>The canonical absolute path targetcli and the daemon will see; lvm:VG/NAME is /dev/VG/NAME,
    /// rbd:POOL/IMAGE the daemon's key rbd/POOL/IMAGE.</summary>
    public static string Canonical(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new UsageException("volume path is empty");
        if (LogicalVolume.Parse(path) is { } lv) return lv.DevicePath;
        if (RbdImage.Parse(path) is { } image) return image.BackingPath;
        var full = Path.GetFullPath(path);
        if (full.Any(c => char.IsWhiteSpace(c) || c is ';' or ':' or '%'))
            throw new UsageException($"volume path '{full}' contains whitespace, ';', ':' or '%', which a TCMU config string cannot carry");
        return full;
    }

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

    /// <summary>
    /// How the daemon names a volume given on the command line (status, pr show/clear/history):
    /// a path made absolute, lvm:VG/NAME as /dev/VG/NAME, rbd:POOL/IMAGE as rbd/POOL/IMAGE;
    /// anything else (a unit serial, rbd/POOL/IMAGE) as it is.
    /// </summary>
    public static string StatusKey(string volume) =>
        volume.StartsWith('/') ? Path.GetFullPath(volume)
        : volume.StartsWith(LogicalVolume.Scheme, StringComparison.Ordinal) || volume.StartsWith(RbdImage.Scheme, StringComparison.Ordinal) ? Canonical(volume)
        : volume;

    /// <summary>Backstore name prefix: the file name without extension, in the characters rtslib accepts.</summary>
    public static string DefaultPrefix(string volumePath)
    {
        var name = Path.GetFileNameWithoutExtension(volumePath);
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

/// <summary>
/// What <c>tsvctl export</c> puts into the backstores' config string, and the size it gives them:
/// a file or device path (its size read here), or an RBD image with its Ceph client (its size
/// from <c>rbd info</c>).
/// </summary>
public sealed record ExportSource(string Path, string Config, RbdImage? Image)
{
    public static ExportSource Of(string volume, string? cephConf, string? clientId)
    {
        if (VolumeLifecycle.Image(volume, cephConf, clientId) is { } image)
            return new ExportSource(image.BackingPath, image.ConfigString, image);
        var path = Volumes.Canonical(volume);
        return new ExportSource(path, path, null);
    }

    public long Size(CliContext ctx) => Image is { } image
        ? new Rbd(ctx.Commands).Size(image) ?? throw new CliFailure(
            $"RBD image {image.Pool}/{image.Image} does not exist (create it: tsvctl volume create {image} --size 10G{VolumeLifecycle.ClientOptions(image)})")
        : Volumes.SizeOf(Path);
}
