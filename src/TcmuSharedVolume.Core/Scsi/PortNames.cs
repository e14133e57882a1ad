using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace TcmuSharedVolume.Scsi;

/// <summary>Initiator and target port names as the config string and configfs give them (SPC-4 TransportID names).</summary>
public static class PortNames
{
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

    internal static bool TryParseTargetPortName(string value, [NotNullWhen(true)] out string? name, out ProtocolId protocol)
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
}
