using System.Diagnostics.CodeAnalysis;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Volumes;

public sealed partial class VolumeConfig
{
    private const string KnownOptions = "size, serial, initiator, target, rtpi, direct, discard_zeroes, preallocate, abort_timeout, optimized_host";

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
        else if (!ConfigString.TryUnescape(rawPath, out var path, out reason) || !TryNormalisePath(path, out normalised, out reason))
            return false;

        var result = new VolumeConfig(devConfig, normalised) { Rbd = rbd };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var range in rawOptions.Split(';'))
        {
            var item = rawOptions[range].Trim();
            if (item.IsEmpty) continue;
            int eq = item.IndexOf('=');
            var key = (eq < 0 ? item : item[..eq]).Trim().ToString().ToLowerInvariant();
            if (key is not ("size" or "serial" or "initiator" or "target" or "rtpi" or "direct" or "discard_zeroes" or "preallocate" or "abort_timeout" or "optimized_host"))
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
            if (!ConfigString.TryUnescape(item[(eq + 1)..].Trim(), out var value, out reason))
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
                if (!ConfigString.TryParseSize(value, out var bytes) || bytes <= 0)
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
                if (PortNames.ProtocolOfName(value) is not { } protocol)
                {
                    reason = $"initiator={value} is not an initiator port name: use an iqn., eui., naa. or fc. name (escape ':' as %3A)";
                    return false;
                }
                Initiator = new InitiatorPort(protocol, PortNames.NormaliseName(protocol, value));
                return true;
            case "target":
                if (!PortNames.TryParseTargetPortName(value, out var name, out var targetProtocol))
                {
                    reason = $"target={value} is not a target port name: use iqn.…,t,0x0001 for iSCSI, or a naa./fc. name (escape ':' as %3A)";
                    return false;
                }
                TargetPortName = name;
                TargetProtocol = targetProtocol;
                return true;
            case "rtpi":
                if (!ConfigString.TryParseUInt(value, out var rtpi) || rtpi is 0 or > ushort.MaxValue)
                {
                    reason = $"rtpi={value} must be a relative target port identifier from 1 to 65535";
                    return false;
                }
                RelativeTargetPortId = (ushort)rtpi;
                return true;
            case "direct":
                if (!TryFlag(key, value, out var direct, out reason)) return false;
                Direct = direct;
                return true;
            case "discard_zeroes":
                if (!TryFlag(key, value, out var zeroes, out reason)) return false;
                DiscardZeroes = zeroes;
                return true;
            case "abort_timeout":
                if (!ConfigString.TryParseUInt(value, out var seconds) || seconds is 0 or > MaxAbortTimeoutSeconds)
                {
                    reason = $"abort_timeout={value} must be whole seconds from 1 to {MaxAbortTimeoutSeconds}, below the initiators' command timeout";
                    return false;
                }
                AbortTimeout = TimeSpan.FromSeconds(seconds);
                return true;
            case "optimized_host":
                if (!ConfigString.TryParseUInt(value, out var host) || host is 0 or > PortGroupDirectory.MaxGroup)
                {
                    reason = $"optimized_host={value} must be the host_id of the host whose target port group is Active/Optimized, 1 to {PortGroupDirectory.MaxGroup} (1 also for a host without host_id)";
                    return false;
                }
                OptimizedHost = (int)host;
                return true;
            default: // preallocate
                if (!TryFlag(key, value, out var pre, out reason)) return false;
                Preallocate = pre;
                return true;
        }
    }

    private static bool TryFlag(string key, string value, out bool flag, [NotNullWhen(false)] out string? reason)
    {
        reason = ConfigString.TryParseFlag(value, out flag) ? null : $"{key}={value} must be 0 or 1";
        return reason is null;
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
