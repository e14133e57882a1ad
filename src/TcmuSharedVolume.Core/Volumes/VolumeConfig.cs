using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// The TCMU config string of one backstore of ours: <c>sharedvol/&lt;absolute path&gt;[;option=value...]</c>
/// (the kernel's <c>dev_config</c>, docs/tcmu.md §6). rtslib rejects <c>:</c> anywhere in it, so
/// the path and every value may carry <c>%XX</c> escapes (<c>%3A</c> for <c>:</c>, <c>%3B</c> for
/// <c>;</c>, <c>%25</c> for <c>%</c>).
/// <para>Options: <c>size=</c> (bytes or K/M/G/T; creates the sparse file if it is missing; an
/// existing file keeps its size), <c>serial=</c> (the volume's unit serial), <c>initiator=</c>,
/// <c>target=</c> and <c>rtpi=</c> (an explicit I_T nexus, overriding what configfs says),
/// <c>direct=1</c> (O_DIRECT, block devices only), <c>discard_zeroes=1</c> (a block device's
/// discarded ranges read zeroes: LBPRZ), <c>preallocate=1</c> (allocate the whole
/// file when size= creates it).</para>
/// <para>A Ceph RBD image instead of a path: <c>sharedvol/rbd/POOL/IMAGE</c>, with <c>ceph_conf=</c>
/// and <c>ceph_id=</c> (<see cref="RbdLocation"/>).</para>
/// </summary>
public sealed class VolumeConfig
{
    public const string Subtype = "sharedvol";
    public const string Prefix = Subtype + "/";
    public const string UioNamePrefix = "tcm-user/";

    private const string KnownOptions = "size, serial, initiator, target, rtpi, direct, discard_zeroes, preallocate, abort_timeout";

    private VolumeConfig(string devConfig, string path)
    {
        DevConfig = devConfig;
        Path = path;
    }

    /// <summary>The string as the kernel holds it, e.g. <c>sharedvol//srv/vol1.img;size=10G</c>.</summary>
    public string DevConfig { get; }

    /// <summary>Absolute, unescaped, normalised (no <c>.</c>, no empty segments, no trailing slash).</summary>
    public string Path { get; }

    /// <summary>Size for creating a missing file, in bytes; a multiple of 512.</summary>
    public long? SizeBytes { get; private set; }

    /// <summary>The volume's unit serial (VPD 80h) when the administrator fixes it.</summary>
    public string? Serial { get; private set; }

    /// <summary>Explicit initiator port; overrides the binding found in configfs.</summary>
    public InitiatorPort? Initiator { get; private set; }

    /// <summary>Explicit target port name (iSCSI: <c>iqn…,t,0x0001</c>); null means "from configfs".</summary>
    public string? TargetPortName { get; private set; }

    /// <summary>Protocol implied by <see cref="TargetPortName"/>, when one is given.</summary>
    public ProtocolId? TargetProtocol { get; private set; }

    /// <summary>Explicit relative target port identifier (SPC-4: 1-65535, 0 is reserved).</summary>
    public ushort? RelativeTargetPortId { get; private set; }

    /// <summary>The Ceph RBD image when the backing path is <c>rbd/POOL/IMAGE</c>; null for a file or block device.</summary>
    public RbdLocation? Rbd { get; private init; }

    public bool Direct { get; private set; }

    /// <summary><c>discard_zeroes=1</c>: the administrator states that the block device reads
    /// zeroes where it was discarded (LBPRZ); a thin LV is recognised without it.</summary>
    public bool DiscardZeroes { get; private set; }

    public bool Preallocate { get; private set; }

    /// <summary>How long PREEMPT AND ABORT waits for the preempted nexuses' commands before it
    /// fails (<c>abort_timeout=</c> seconds); null for the default.</summary>
    public TimeSpan? AbortTimeout { get; private set; }

    /// <summary>Largest <c>abort_timeout=</c>: the answer must reach the initiator before its own
    /// command timeout (30 s in Linux sd and in LIO's TCMU cmd_time_out by default).</summary>
    public const int MaxAbortTimeoutSeconds = 25;

    /// <summary>Whether a device's dev_config belongs to this daemon (the only devices it serves or replies for).</summary>
    public static bool IsOurs(string? devConfig) => devConfig is not null && devConfig.StartsWith(Prefix, StringComparison.Ordinal);

    public static VolumeConfig Parse(string devConfig) =>
        TryParse(devConfig, out var config, out var reason) ? config : throw new FormatException(reason);

    /// <summary>Parses the syntax only; <see cref="Validate"/> checks the file system.</summary>
    public static bool TryParse(string? devConfig, [NotNullWhen(true)] out VolumeConfig? config, [NotNullWhen(false)] out string? reason)
    {
        config = null;
        if (devConfig is null || !IsOurs(devConfig))
        {
            reason = $"config '{devConfig}' is not for this handler: it must start with {Prefix}";
            return false;
        }

        var rest = devConfig.AsSpan(Prefix.Length);
        // An echo without -n leaves a newline in attrib/dev_config (docs/tcmu.md §2).
        rest = rest.TrimEnd("\r\n");
        int semi = rest.IndexOf(';');
        var rawPath = semi < 0 ? rest : rest[..semi];
        var rawOptions = semi < 0 ? ReadOnlySpan<char>.Empty : rest[(semi + 1)..];

        if (rawPath.IsEmpty)
        {
            reason = $"no backing path: write {Prefix}<absolute path>[;option=value...]";
            return false;
        }
        RbdLocation? rbd = null;
        string? normalised;
        if (RbdLocation.IsRbd(rawPath))
        {
            if (!RbdLocation.TryParse(rawPath, ref rawOptions, out rbd, out reason))
                return false;
            normalised = rbd.Path;
        }
        else if (!TryUnescape(rawPath, out var path, out reason) || !TryNormalisePath(path, out normalised, out reason))
            return false;

        var result = new VolumeConfig(devConfig, normalised) { Rbd = rbd };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var range in rawOptions.Split(';'))
        {
            var item = rawOptions[range].Trim();
            if (item.IsEmpty) continue;
            int eq = item.IndexOf('=');
            var key = (eq < 0 ? item : item[..eq]).Trim().ToString().ToLowerInvariant();
            if (key is not ("size" or "serial" or "initiator" or "target" or "rtpi" or "direct" or "discard_zeroes" or "preallocate" or "abort_timeout"))
            {
                reason = $"unknown option '{key}': known options are {KnownOptions}";
                return false;
            }
            if (eq < 0)
            {
                reason = $"option '{key}' needs a value, e.g. {key}=...";
                return false;
            }
            if (!seen.Add(key))
            {
                reason = $"option {key}= is given twice";
                return false;
            }
            if (!TryUnescape(item[(eq + 1)..].Trim(), out var value, out reason))
                return false;
            if (!result.TryApply(key, value, out reason))
                return false;
        }

        config = result;
        reason = null;
        return true;
    }

    private bool TryApply(string key, string value, [NotNullWhen(false)] out string? reason)
    {
        reason = null;
        switch (key)
        {
            case "size":
                if (!TryParseSize(value, out var bytes) || bytes <= 0)
                {
                    reason = $"size={value} is not a size: use bytes or K/M/G/T";
                    return false;
                }
                if (bytes % 512 != 0)
                {
                    reason = $"size={value} is not a multiple of 512 bytes";
                    return false;
                }
                SizeBytes = bytes;
                return true;
            case "serial":
                if (value.Length is 0 or > 64 || !value.All(c => c > 0x20 && c < 0x7F))
                {
                    reason = $"serial={value} must be 1-64 printable ASCII characters without spaces";
                    return false;
                }
                Serial = value;
                return true;
            case "initiator":
                if (ProtocolOfName(value) is not { } protocol)
                {
                    reason = $"initiator={value} is not an initiator port name: use an iqn., eui., naa. or fc. name (escape ':' as %3A)";
                    return false;
                }
                Initiator = new InitiatorPort(protocol, NormaliseName(protocol, value));
                return true;
            case "target":
                if (!TryParseTargetPortName(value, out var name, out var targetProtocol))
                {
                    reason = $"target={value} is not a target port name: use iqn.…,t,0x0001 for iSCSI, or a naa./fc. name (escape ':' as %3A)";
                    return false;
                }
                TargetPortName = name;
                TargetProtocol = targetProtocol;
                return true;
            case "rtpi":
                if (!TryParseUInt(value, out var rtpi) || rtpi is 0 or > ushort.MaxValue)
                {
                    reason = $"rtpi={value} must be a relative target port identifier from 1 to 65535";
                    return false;
                }
                RelativeTargetPortId = (ushort)rtpi;
                return true;
            case "direct":
                if (!TryParseFlag(value, out var direct))
                {
                    reason = $"direct={value} must be 0 or 1";
                    return false;
                }
                Direct = direct;
                return true;
            case "discard_zeroes":
                if (!TryParseFlag(value, out var zeroes))
                {
                    reason = $"discard_zeroes={value} must be 0 or 1";
                    return false;
                }
                DiscardZeroes = zeroes;
                return true;
            case "abort_timeout":
                if (!TryParseUInt(value, out var seconds) || seconds is 0 or > MaxAbortTimeoutSeconds)
                {
                    reason = $"abort_timeout={value} must be whole seconds from 1 to {MaxAbortTimeoutSeconds}, below the initiators' command timeout";
                    return false;
                }
                AbortTimeout = TimeSpan.FromSeconds(seconds);
                return true;
            default: // preallocate
                if (!TryParseFlag(value, out var pre))
                {
                    reason = $"preallocate={value} must be 0 or 1";
                    return false;
                }
                Preallocate = pre;
                return true;
        }
    }

    /// <summary>
    /// Checks the backing store against the options, without changing anything. The reason is one
    /// sentence the administrator can act on.
    /// </summary>
    public (bool Ok, string? Reason) Validate() => Rbd is { } rbd ? rbd.Validate(this) : Validate("/sys/class/block");

    /// <summary><paramref name="sysClassBlock"/> is where block devices are listed (tests point it elsewhere).</summary>
    internal (bool Ok, string? Reason) Validate(string sysClassBlock)
    {
        if (Directory.Exists(Path))
            return (false, $"{Path} is a directory: give a file or a block device");

        bool underDev = Path.StartsWith("/dev/", StringComparison.Ordinal);
        if (!File.Exists(Path))
        {
            if (underDev)
                return (false, $"{Path} is not a block device (it does not exist)");
            var parent = System.IO.Path.GetDirectoryName(Path) ?? "/";
            if (!Directory.Exists(parent))
                return (false, $"parent directory {parent} of {Path} does not exist");
            if (SizeBytes is null)
                return (false, $"{Path} does not exist and no size= was given to create it");
            if (Direct)
                return (false, "direct=1 is only for block devices, and size= creates a file");
            return (true, null);
        }

        if (IsBlockDevice(sysClassBlock))
        {
            if (SizeBytes is not null)
                return (false, $"size= cannot be used with block device {Path}: its size is the device's");
            if (Preallocate)
                return (false, $"preallocate=1 is only for files, and {Path} is a block device");
            return (true, null);
        }
        if (underDev)
            return (false, $"{Path} is not a block device");
        if (Direct)
            return (false, $"direct=1 is only for block devices, and {Path} is a file");
        if (DiscardZeroes)
            return (false, $"discard_zeroes=1 is only for block devices, and {Path} is a file (a file's punched holes read zeroes anyway)");
        if (new FileInfo(Path).Length == 0)
            return (false, $"{Path} is empty: give it a size (truncate -s) or remove it and give size=");
        return (true, null);
    }

    /// <summary>Whether the path names a block device: it resolves to /dev/X and the kernel lists X in sysfs.</summary>
    public bool IsBlockDevice() => IsBlockDevice("/sys/class/block");

    internal bool IsBlockDevice(string sysClassBlock)
    {
        var real = ResolveCanonicalPath();
        if (!real.StartsWith("/dev/", StringComparison.Ordinal)) return false;
        return Directory.Exists(System.IO.Path.Combine(sysClassBlock, System.IO.Path.GetFileName(real)));
    }

    /// <summary>
    /// Creates the sparse file at <see cref="SizeBytes"/> when it is missing (allocating it all with
    /// <see cref="Preallocate"/>), through <see cref="Backends.BackingPath.CreateFile(string, long, bool)"/>:
    /// mode 0600, since it holds a disk. An existing file is left as it is.
    /// </summary>
    public (bool Ok, string? Reason) CreateIfMissing()
    {
        if (Rbd is not null || File.Exists(Path) || Directory.Exists(Path)) return (true, null);
        if (SizeBytes is not { } size)
            return (false, $"{Path} does not exist and no size= was given to create it");
        try
        {
            Backends.BackingPath.CreateFile(Path, size, Preallocate);
            return (true, null);
        }
        catch (Backends.BackingStoreException e) when (e.Errno == Libc.EEXIST)
        {
            return (true, null); // another path of the same volume created it first
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (false, $"cannot create {Path}: {e.Message}");
        }
    }

    /// <summary>
    /// The path with every symbolic link resolved by name, as earlier versions made the serial of
    /// a volume from it (<see cref="VolumeIdentity.FromBackingPath"/>); kept to recognise those
    /// volumes. Nothing is opened at this path: <see cref="Backends.BackingPath"/> resolves the
    /// path that is opened, and volumes are grouped by what it opens. Missing components are kept as written.
    /// </summary>
    public string ResolveCanonicalPath() => Rbd?.Path ?? ResolveCanonicalPath(Path);

    public static string ResolveCanonicalPath(string absolutePath)
    {
        var pending = new Stack<string>();
        // Enumerable.Reverse by name: on net9.0's libraries (the Native AOT fallback build,
        // packaging/README.md) C# 14 binds array.Reverse() to the in-place span overload.
        foreach (var part in Enumerable.Reverse(absolutePath.Split('/', StringSplitOptions.RemoveEmptyEntries)))
            pending.Push(part);
        var resolved = new List<string>();
        int hops = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".") continue;
            if (part == "..")
            {
                if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            var candidate = "/" + string.Join('/', resolved.Append(part));
            string? target = null;
            try { target = new FileInfo(candidate).LinkTarget; }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            // 40 is the kernel's MAXSYMLINKS: stop on loops the way open(2) would.
            if (target is null || ++hops > 40)
            {
                resolved.Add(part);
                continue;
            }
            if (target.StartsWith('/')) resolved.Clear();
            foreach (var t in Enumerable.Reverse(target.Split('/', StringSplitOptions.RemoveEmptyEntries)))
                pending.Push(t);
        }
        return "/" + string.Join('/', resolved);
    }

    /// <summary>Bytes, or a number with a binary K/M/G/T suffix (e.g. <c>10G</c>).</summary>
    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        var s = text.AsSpan().Trim();
        if (s.IsEmpty) return false;
        int shift = char.ToUpperInvariant(s[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift != 0) s = s[..^1];
        if (s.IsEmpty || s.ContainsAnyExceptInRange('0', '9') || !long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return false;
        if (n > long.MaxValue >> shift) return false;
        bytes = n << shift;
        return true;
    }

    /// <summary>
    /// Splits a UIO name <c>tcm-user/&lt;hba&gt;/&lt;name&gt;/&lt;dev_config&gt;</c> (K6.1 <c>tcmu_update_uio_info</c>).
    /// The dev_config may itself contain slashes; it is empty when the device has none.
    /// </summary>
    public static bool TryParseUioName(string? uioName, out int hbaIndex, [NotNullWhen(true)] out string? deviceName, [NotNullWhen(true)] out string? devConfig)
    {
        hbaIndex = 0;
        deviceName = null;
        devConfig = null;
        if (uioName is null) return false;
        var s = uioName.AsSpan().TrimEnd("\r\n");
        if (!s.StartsWith(UioNamePrefix, StringComparison.Ordinal)) return false;
        s = s[UioNamePrefix.Length..];
        int slash = s.IndexOf('/');
        if (slash <= 0 || !int.TryParse(s[..slash], NumberStyles.None, CultureInfo.InvariantCulture, out hbaIndex))
            return false;
        s = s[(slash + 1)..];
        slash = s.IndexOf('/');
        var name = slash < 0 ? s : s[..slash];
        if (name.IsEmpty) return false;
        deviceName = name.ToString();
        devConfig = slash < 0 ? "" : s[(slash + 1)..].ToString();
        return true;
    }

    /// <summary>Escapes a value for the config string: everything outside a safe set becomes %XX.</summary>
    public static string Escape(string value)
    {
        var sb = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            char c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '-' or '_' or ',' or '+' or '@' or '~')
                sb.Append(c);
            else
                sb.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    /// <summary>
    /// Protocol of an initiator port name by its prefix: iSCSI names (iqn., eui.), and the names
    /// tcm_loop uses for its emulated SAS (naa.) and FC (fc.) ports.
    /// </summary>
    public static ProtocolId? ProtocolOfName(string name)
    {
        if (name.Length < 5 || name.Any(char.IsWhiteSpace)) return null;
        if (name.StartsWith("iqn.", StringComparison.OrdinalIgnoreCase) || name.StartsWith("eui.", StringComparison.OrdinalIgnoreCase))
            return ProtocolId.Iscsi;
        if (name.StartsWith("naa.", StringComparison.OrdinalIgnoreCase)) return ProtocolId.Sas;
        if (name.StartsWith("fc.", StringComparison.OrdinalIgnoreCase)) return ProtocolId.FibreChannel;
        return null;
    }

    /// <summary>iSCSI names compare case-insensitively (RFC 3720 3.2.6.1); we keep them in lower case.</summary>
    public static string NormaliseName(ProtocolId protocol, string name) =>
        protocol == ProtocolId.Iscsi ? name.ToLowerInvariant() : name;

    /// <summary>
    /// SPC-4 iSCSI target port name: the target name, ",t,0x" and the TPGT in hex. A bare iSCSI
    /// name gets TPGT 1, the first portal group LIO and targetcli create.
    /// </summary>
    public static string IscsiTargetPortName(string targetName, ushort tpgt) =>
        $"{targetName.ToLowerInvariant()},t,0x{tpgt:x4}";

    private static bool TryParseTargetPortName(string value, [NotNullWhen(true)] out string? name, out ProtocolId protocol)
    {
        name = null;
        int sep = value.IndexOf(",t,0x", StringComparison.OrdinalIgnoreCase);
        var bare = sep < 0 ? value : value[..sep];
        if (ProtocolOfName(bare) is not { } p) { protocol = default; return false; }
        // A naa. name after ",t," is an iSCSI name too (RFC 3720 allows naa. iSCSI names).
        protocol = sep >= 0 ? ProtocolId.Iscsi : p;
        if (protocol != ProtocolId.Iscsi) { name = bare; return true; }
        ushort tpgt = 1;
        if (sep >= 0 && !ushort.TryParse(value.AsSpan(sep + 5), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out tpgt))
            return false;
        name = IscsiTargetPortName(bare, tpgt);
        return true;
    }

    private static bool TryParseUInt(string value, out uint result)
    {
        if (value.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return uint.TryParse(value.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out result);
        return uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out result);
    }

    private static bool TryParseFlag(string value, out bool flag)
    {
        flag = value == "1";
        return value is "0" or "1";
    }

    internal static bool TryUnescape(ReadOnlySpan<char> text, [NotNullWhen(true)] out string? value, [NotNullWhen(false)] out string? reason)
    {
        value = null;
        reason = null;
        if (text.IndexOf('%') < 0)
        {
            value = text.ToString();
            return true;
        }
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '%')
            {
                int next = text[i..].IndexOf('%');
                var run = next < 0 ? text[i..] : text.Slice(i, next);
                bytes.AddRange(Encoding.UTF8.GetBytes(run.ToString()));
                i += run.Length - 1;
                continue;
            }
            if (i + 2 >= text.Length
                || !byte.TryParse(text.Slice(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
            {
                var bad = text.Slice(i, Math.Min(3, text.Length - i)).ToString();
                reason = $"bad escape '{bad}' in '{text}': write %XX with two hex digits (%3A for ':')";
                return false;
            }
            bytes.Add(b);
            i += 2;
        }
        value = Encoding.UTF8.GetString(bytes.ToArray());
        return true;
    }

    private static bool TryNormalisePath(string path, [NotNullWhen(true)] out string? normalised, [NotNullWhen(false)] out string? reason)
    {
        normalised = null;
        if (!path.StartsWith('/'))
        {
            reason = $"{path} is not an absolute path: write {Prefix}/{path}";
            return false;
        }
        if (path.IndexOf('\0') >= 0)
        {
            reason = "the path contains a NUL character";
            return false;
        }
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();
        if (parts.Contains(".."))
        {
            reason = $"{path} contains '..': give the path without it";
            return false;
        }
        if (parts.Length == 0)
        {
            reason = "the path is the root directory: give a file or a block device";
            return false;
        }
        normalised = "/" + string.Join('/', parts);
        reason = null;
        return true;
    }
}
