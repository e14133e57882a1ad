using System.Buffers.Binary;
using System.Text;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>
/// A parsed TransportID (SPC-4 7.6.4): protocol, the initiator port name in canonical form
/// (iSCSI: the name; FC/SAS/SBP/SRP: lower-case hex of the port address) and, for iSCSI
/// format 01b, the ISID.
/// </summary>
internal readonly record struct TransportId(ProtocolId Protocol, string Name, string? Isid)
{
    /// <summary>Does this TransportID name <paramref name="port"/>? ISIDs are not part of the identity.</summary>
    public bool Matches(InitiatorPort port) =>
        port.Protocol == Protocol && string.Equals(Canonical(port), Name, StringComparison.OrdinalIgnoreCase);

    /// <summary>iSCSI names compare case-insensitively (RFC 3720 normalisation); addresses as hex.</summary>
    public static string Canonical(InitiatorPort port)
    {
        if (port.Protocol == ProtocolId.Iscsi) return port.Name.ToLowerInvariant();
        var s = port.Name.AsSpan();
        if (s.StartsWith("naa.", StringComparison.OrdinalIgnoreCase)) s = s[4..];
        else if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        var sb = new StringBuilder(s.Length);
        foreach (char c in s)
            if (char.IsAsciiHexDigit(c)) sb.Append(char.ToLowerInvariant(c));
        return sb.ToString();
    }

    /// <summary>ISID as 12 lower-case hex digits, or null when unknown or malformed.</summary>
    public static string? NormaliseIsid(string? isid)
    {
        if (string.IsNullOrEmpty(isid)) return null;
        var s = isid.AsSpan();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        if (s.Length != 12) return null;
        foreach (char c in s)
            if (!char.IsAsciiHexDigit(c)) return null;
        return s.ToString().ToLowerInvariant();
    }
}

/// <summary>Reads consecutive TransportIDs from a parameter list (SPEC_I_PT, REGISTER AND MOVE).</summary>
internal ref struct TransportIdReader
{
    private ReadOnlySpan<byte> _rest;

    public TransportIdReader(ReadOnlySpan<byte> data) => _rest = data;

    public readonly bool End => _rest.IsEmpty;

    /// <summary>Parses the next TransportID; false when it is malformed or runs past the data
    /// (both are INVALID FIELD IN PARAMETER LIST, docs/reservations.md §4, §10).</summary>
    public bool TryRead(out TransportId id)
    {
        id = default;
        if (_rest.Length < 4) return false;
        int format = _rest[0] >> 6;
        var protocol = (ProtocolId)(_rest[0] & 0x0F);
        switch (protocol)
        {
            case ProtocolId.Iscsi:
            {
                int additional = BinaryPrimitives.ReadUInt16BigEndian(_rest.Slice(2));
                if (additional < 20 || additional % 4 != 0 || 4 + additional > _rest.Length) return false;
                var body = _rest.Slice(4, additional);
                int nul = body.IndexOf((byte)0);
                if (nul >= 0) body = body[..nul]; // the first NUL ends the name (SPC-4 7.6.4.6)
                string text;
                try { text = new UTF8Encoding(false, true).GetString(body); }
                catch (DecoderFallbackException) { return false; }
                string? isid = null;
                if (format == 1)
                {
                    int sep = text.IndexOf(",i,0x", StringComparison.OrdinalIgnoreCase);
                    if (sep < 0) return false;
                    var isidText = text[(sep + 5)..];
                    if (isidText.Length is 0 or > 12) return false;
                    foreach (char c in isidText)
                        if (!char.IsAsciiHexDigit(c)) return false;
                    isid = isidText.ToLowerInvariant().PadLeft(12, '0');
                    text = text[..sep];
                }
                else if (format != 0) return false;
                if (text.Length == 0) return false;
                id = new TransportId(ProtocolId.Iscsi, text.ToLowerInvariant(), isid);
                _rest = _rest[(4 + additional)..];
                return true;
            }
            case ProtocolId.FibreChannel or ProtocolId.Sas or ProtocolId.Sbp or ProtocolId.Srp:
            {
                if (format != 0 || _rest.Length < 24) return false;
                var address = protocol switch
                {
                    ProtocolId.Sas => _rest.Slice(4, 8),
                    ProtocolId.Srp => _rest.Slice(8, 16),
                    _ => _rest.Slice(8, 8),
                };
                id = new TransportId(protocol, Convert.ToHexStringLower(address), null);
                _rest = _rest[24..];
                return true;
            }
            default:
                return false;
        }
    }
}

internal static class TransportIdWriter
{
    /// <summary>
    /// The TransportID of an initiator port for READ FULL STATUS: iSCSI format 01b with the full
    /// 12-character ISID when known, else 00b; padded to a multiple of 4 (docs/reservations.md §12).
    /// </summary>
    public static byte[] Build(InitiatorPort port, string? isid)
    {
        if (port.Protocol == ProtocolId.Iscsi)
        {
            string? normalised = TransportId.NormaliseIsid(isid);
            string text = normalised is null ? port.Name : $"{port.Name},i,0x{normalised}";
            int textLength = Encoding.UTF8.GetByteCount(text) + 1; // NUL-terminated
            int additional = Math.Max(20, (textLength + 3) & ~3);
            var tid = new byte[4 + additional];
            tid[0] = (byte)((normalised is null ? 0x00 : 0x40) | (byte)ProtocolId.Iscsi);
            BinaryPrimitives.WriteUInt16BigEndian(tid.AsSpan(2), (ushort)additional);
            Encoding.UTF8.GetBytes(text, tid.AsSpan(4));
            return tid;
        }

        var result = new byte[24];
        result[0] = (byte)port.Protocol;
        var hex = TransportId.Canonical(port);
        byte[] address;
        try { address = Convert.FromHexString(hex.Length % 2 == 0 ? hex : "0" + hex); }
        catch (FormatException) { address = []; }
        int offset = port.Protocol == ProtocolId.Sas ? 4 : 8;
        int width = port.Protocol == ProtocolId.Srp ? 16 : 8;
        // Right-align a short address, keep the low-order bytes of a long one.
        var src = address.AsSpan(Math.Max(0, address.Length - width));
        src.CopyTo(result.AsSpan(offset + width - src.Length));
        return result;
    }
}
