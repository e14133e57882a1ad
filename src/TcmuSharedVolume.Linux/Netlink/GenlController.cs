using System.Diagnostics.CodeAnalysis;

namespace TcmuSharedVolume.Linux.Netlink;

/// <summary>A generic netlink family as the controller describes it.</summary>
public sealed record GenlFamily(ushort Id, string Name, uint Version, IReadOnlyDictionary<string, uint> MulticastGroups);

/// <summary>The generic netlink controller ("nlctrl", family id 0x10): looking a family up by name.</summary>
public static class GenlController
{
    public const byte CmdNewFamily = 1;
    public const byte CmdGetFamily = 3;

    public const ushort AttrFamilyId = 1;
    public const ushort AttrFamilyName = 2;
    public const ushort AttrVersion = 3;
    public const ushort AttrMcastGroups = 7;

    public const ushort AttrMcastGrpName = 1;
    public const ushort AttrMcastGrpId = 2;

    /// <summary>CTRL_CMD_GETFAMILY with CTRL_ATTR_FAMILY_NAME; the answer is a NEWFAMILY message or an NLMSG_ERROR.</summary>
    public static int WriteGetFamily(Span<byte> buffer, string familyName, uint sequence)
    {
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(Nl.GenlIdCtrl, Nl.FlagRequest, sequence);
        w.GenlHeader(CmdGetFamily, 1);
        w.PutString(AttrFamilyName, familyName);
        return w.EndMessage();
    }

    /// <summary>
    /// Reads CTRL_ATTR_FAMILY_ID, _FAMILY_NAME, _VERSION and the nested CTRL_ATTR_MCAST_GROUPS
    /// (an array of nests, each holding CTRL_ATTR_MCAST_GRP_NAME and _ID).
    /// </summary>
    public static bool TryParseFamily(ReadOnlySpan<byte> attributes, [NotNullWhen(true)] out GenlFamily? family)
    {
        family = null;
        ushort? id = null;
        string? name = null;
        uint version = 0;
        var groups = new Dictionary<string, uint>(StringComparer.Ordinal);
        var reader = new NetlinkAttributeReader(attributes);
        while (reader.TryRead(out var type, out var value))
        {
            switch (type)
            {
                case AttrFamilyId when NetlinkAttributeReader.TryU16(value, out var v):
                    id = v;
                    break;
                case AttrFamilyName:
                    name = NetlinkAttributeReader.String(value);
                    break;
                case AttrVersion:
                    NetlinkAttributeReader.TryU32(value, out version);
                    break;
                case AttrMcastGroups:
                    var array = new NetlinkAttributeReader(value);
                    while (array.TryRead(out _, out var entry))
                    {
                        string? groupName = null;
                        uint? groupId = null;
                        var fields = new NetlinkAttributeReader(entry);
                        while (fields.TryRead(out var ft, out var fv))
                        {
                            if (ft == AttrMcastGrpName) groupName = NetlinkAttributeReader.String(fv);
                            else if (ft == AttrMcastGrpId && NetlinkAttributeReader.TryU32(fv, out var gid)) groupId = gid;
                        }
                        if (groupName is not null && groupId is { } g) groups[groupName] = g;
                    }
                    break;
            }
        }
        if (id is not { } familyId || name is null || reader.Malformed) return false;
        family = new GenlFamily(familyId, name, version, groups);
        return true;
    }
}
