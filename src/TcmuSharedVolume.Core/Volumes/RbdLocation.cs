using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// Where an RBD volume lives: the part of the config string
/// <c>sharedvol/rbd/POOL/IMAGE[;ceph_conf=/etc/ceph/ceph.conf][;ceph_id=admin]</c> that names the
/// image and the Ceph client. A file or device path is always absolute, so a backing path that
/// starts with <c>rbd/</c> cannot be mistaken for one. rtslib forbids <c>:</c> in the string, which
/// this syntax never needs (a value may still carry <c>%XX</c> escapes).
/// </summary>
public sealed class RbdLocation
{
    public const string PathPrefix = "rbd/";

    /// <summary>The cluster's name in librados (<c>$cluster</c> in ceph.conf).</summary>
    public const string ClusterName = "ceph";

    public const string DefaultClientId = "admin";

    private RbdLocation(string pool, string image, string? cephConf, string clientId)
    {
        Pool = pool;
        Image = image;
        CephConf = cephConf;
        ClientId = clientId;
    }

    public string Pool { get; }

    public string Image { get; }

    /// <summary>ceph.conf to read; null for librados' own search (CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/ceph.conf).</summary>
    public string? CephConf { get; }

    /// <summary>The client's id without <c>client.</c> (what <c>rbd --id</c> takes); its key comes from the keyring ceph.conf names.</summary>
    public string ClientId { get; }

    /// <summary><c>rbd/POOL/IMAGE</c>: the volume's key (never absolute, so no file path can equal it).</summary>
    public string Path => PathPrefix + Pool + "/" + Image;

    public override string ToString() => Path;

    public static RbdLocation Create(string pool, string image, string? cephConf = null, string clientId = DefaultClientId)
    {
        if (!IsName(pool)) throw new ArgumentException($"'{pool}' is not a pool name", nameof(pool));
        if (!IsName(image)) throw new ArgumentException($"'{image}' is not an image name", nameof(image));
        if (!IsName(clientId)) throw new ArgumentException($"'{clientId}' is not a client id", nameof(clientId));
        return new RbdLocation(pool, image, cephConf, clientId);
    }

    /// <summary>Whether a config string's backing path names an RBD image.</summary>
    public static bool IsRbd(ReadOnlySpan<char> rawPath) => rawPath.StartsWith(PathPrefix, StringComparison.Ordinal);

    /// <summary>
    /// Parses <c>rbd/POOL/IMAGE</c> and takes <c>ceph_conf=</c> and <c>ceph_id=</c> out of
    /// <paramref name="rawOptions"/>, leaving the options every volume has for the caller.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> rawPath, ref ReadOnlySpan<char> rawOptions,
        [NotNullWhen(true)] out RbdLocation? location, [NotNullWhen(false)] out string? reason)
    {
        location = null;
        var parts = rawPath[PathPrefix.Length..].ToString().Split('/');
        if (parts.Length != 2)
        {
            reason = $"'{rawPath}' is not an RBD image: write {VolumeConfig.Prefix}{PathPrefix}POOL/IMAGE";
            return false;
        }
        if (!ConfigString.TryUnescape(parts[0], out var pool, out reason) || !ConfigString.TryUnescape(parts[1], out var image, out reason))
            return false;
        if (!IsName(pool))
        {
            reason = $"'{pool}' is not a pool name: use letters, digits, '.', '-' and '_'";
            return false;
        }
        if (!IsName(image))
        {
            reason = $"'{image}' is not an image name: use letters, digits, '.', '-' and '_'";
            return false;
        }

        string? conf = null, id = null;
        var rest = new StringBuilder();
        var options = rawOptions;
        foreach (var range in options.Split(';'))
        {
            var item = options[range].Trim();
            int eq = item.IndexOf('=');
            var key = (eq < 0 ? item : item[..eq]).Trim().ToString().ToLowerInvariant();
            if (key is not ("ceph_conf" or "ceph_id"))
            {
                if (!item.IsEmpty) rest.Append(item).Append(';');
                continue;
            }
            if (eq < 0)
            {
                reason = $"option '{key}' needs a value, e.g. {key}=...";
                return false;
            }
            if ((key == "ceph_conf" ? conf : id) is not null)
            {
                reason = $"option {key}= is given twice";
                return false;
            }
            if (!ConfigString.TryUnescape(item[(eq + 1)..].Trim(), out var value, out reason))
                return false;
            if (key == "ceph_conf")
            {
                if (!value.StartsWith('/') || value.Contains('\0'))
                {
                    reason = $"ceph_conf={value} must be the absolute path of a ceph.conf";
                    return false;
                }
                conf = value;
            }
            else
            {
                if (value.StartsWith("client.", StringComparison.Ordinal)) value = value["client.".Length..];
                if (!IsName(value))
                {
                    reason = $"ceph_id={value} is not a Ceph client id: give the name without 'client.', e.g. ceph_id=admin";
                    return false;
                }
                id = value;
            }
        }
        rawOptions = rest.ToString();
        location = new RbdLocation(pool, image, conf, id ?? DefaultClientId);
        reason = null;
        return true;
    }

    /// <summary>What can be checked without reaching the cluster; the image itself is checked when it is opened.</summary>
    public (bool Ok, string? Reason) Validate(VolumeConfig config)
    {
        if (config.SizeBytes is not null)
            return (false, $"size= cannot be used with RBD image {Pool}/{Image}: create or grow it with rbd create / rbd resize");
        if (config.Direct)
            return (false, "direct=1 is only for block devices");
        if (config.Preallocate)
            return (false, "preallocate=1 is only for files");
        if (CephConf is not null && !File.Exists(CephConf))
            return (false, $"ceph_conf={CephConf} does not exist");
        return (true, null);
    }

    /// <summary>Pool, image and client names as Ceph's tools accept them without quoting.</summary>
    private static bool IsName(string s) =>
        s.Length is > 0 and <= 255 && s[0] != '.' && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_');
}
