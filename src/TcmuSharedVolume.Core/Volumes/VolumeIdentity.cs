using System.Security.Cryptography;
using System.Text;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// What every path of a volume reports as the disk's identity: INQUIRY vendor/product, unit
/// serial (VPD 80h) and an NAA designator (VPD 83h). Clusters and multipath match paths by these,
/// so they are identical on every path and stable across restarts. They are derived from a
/// serial that the administrator may set explicitly (cfgstring <c>serial=</c>); otherwise from a
/// hash of the canonical backing path, which never reveals the path itself.
/// </summary>
public sealed class VolumeIdentity
{
    public const string Vendor = "TSV";
    public const string Product = "SharedVolume";
    public const string Revision = "0001";

    public VolumeIdentity(string unitSerial)
    {
        if (string.IsNullOrEmpty(unitSerial) || unitSerial.Length > 64 || !unitSerial.All(c => c > 0x20 && c < 0x7F))
            throw new ArgumentException("unit serial must be 1-64 printable ASCII characters without spaces", nameof(unitSerial));
        UnitSerial = unitSerial;
        Span<byte> h = stackalloc byte[32];
        SHA256.HashData(Encoding.ASCII.GetBytes(unitSerial), h);
        // NAA 3h, locally assigned (SPC-4 7.8.6.6.3): 4-bit NAA then 60 bits of our own.
        ulong v = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h);
        NaaLocallyAssigned = (3UL << 60) | (v & 0x0FFF_FFFF_FFFF_FFFFUL);
    }

    /// <summary>VPD 80h PRODUCT SERIAL NUMBER.</summary>
    public string UnitSerial { get; }

    /// <summary>VPD 83h NAA designator (8 bytes, big-endian).</summary>
    public ulong NaaLocallyAssigned { get; }

    /// <summary>The default serial of a volume: 32 hex digits of SHA-256 over its canonical path.</summary>
    public static VolumeIdentity FromBackingPath(string canonicalPath)
    {
        var h = SHA256.HashData(Encoding.UTF8.GetBytes(canonicalPath));
        return new VolumeIdentity(Convert.ToHexStringLower(h, 0, 16));
    }
}
