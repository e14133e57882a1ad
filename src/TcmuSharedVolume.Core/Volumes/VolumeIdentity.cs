using System.Security.Cryptography;
using System.Text;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// What every path of a volume reports as the disk's identity: INQUIRY vendor/product, unit
/// serial (VPD 80h) and an NAA designator (VPD 83h). Clusters and multipath match paths by these,
/// so they are identical on every path and stable across restarts. The administrator may set the
/// serial (cfgstring <c>serial=</c>); otherwise a volume gets a random one, made once from a UUID
/// and kept in the state directory (<see cref="VolumeIdentityStore"/>), so that two disks never
/// share an identity, not even two hosts' disks at the same path. Volumes first served before
/// that keep the serial made from a hash of their path (<see cref="FromBackingPath"/>).
/// </summary>
public sealed class VolumeIdentity
{
    public const string Vendor = "TSV";
    public const string Product = "SharedVolume";
    public const string Revision = "0001";

    /// <summary>An identity whose NAA designator is derived from the serial (SHA-256).</summary>
    public VolumeIdentity(string unitSerial)
        : this(unitSerial, NaaFromSerial(unitSerial))
    {
    }

    /// <summary>An identity as stored: serial and NAA designator both given.</summary>
    public VolumeIdentity(string unitSerial, ulong naaLocallyAssigned)
    {
        if (!IsValidSerial(unitSerial))
            throw new ArgumentException("unit serial must be 1-64 printable ASCII characters without spaces", nameof(unitSerial));
        if (naaLocallyAssigned >> 60 != 3)
            throw new ArgumentException("the NAA designator must be NAA 3h (locally assigned)", nameof(naaLocallyAssigned));
        UnitSerial = unitSerial;
        NaaLocallyAssigned = naaLocallyAssigned;
    }

    public static bool IsValidSerial(string? serial) =>
        !string.IsNullOrEmpty(serial) && serial.Length <= 64 && serial.All(c => c > 0x20 && c < 0x7F);

    private static ulong NaaFromSerial(string unitSerial)
    {
        if (!IsValidSerial(unitSerial))
            throw new ArgumentException("unit serial must be 1-64 printable ASCII characters without spaces", nameof(unitSerial));
        Span<byte> h = stackalloc byte[32];
        SHA256.HashData(Encoding.ASCII.GetBytes(unitSerial), h);
        // NAA 3h, locally assigned (SPC-4 7.8.6.6.3): 4-bit NAA then 60 bits of our own.
        ulong v = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(h);
        return (3UL << 60) | (v & 0x0FFF_FFFF_FFFF_FFFFUL);
    }

    /// <summary>
    /// A new identity from a random (version 4) UUID: the serial is its 32 hex digits, the NAA 3h
    /// designator takes 60 of its random bits. Nothing about the host or the path goes in, so
    /// two disks get the same identity only by copying a state directory.
    /// </summary>
    public static VolumeIdentity NewRandom(Guid uuid)
    {
        Span<byte> b = stackalloc byte[16];
        uuid.TryWriteBytes(b, bigEndian: true, out _);
        // Bytes 8-15 of an RFC 9562 UUID hold 62 random bits (the variant takes 2 of byte 8).
        ulong low = System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b[8..]);
        return new VolumeIdentity(Convert.ToHexStringLower(b), (3UL << 60) | (low & 0x0FFF_FFFF_FFFF_FFFFUL));
    }

    /// <summary>VPD 80h PRODUCT SERIAL NUMBER.</summary>
    public string UnitSerial { get; }

    /// <summary>VPD 83h NAA designator (8 bytes, big-endian).</summary>
    public ulong NaaLocallyAssigned { get; }

    /// <summary>
    /// The serial a volume had before identities were kept in the state directory: 32 hex digits
    /// of SHA-256 over its canonical path. Only volumes whose reservation state is stored under
    /// it keep it (upgrade); it is never given to a new volume.
    /// </summary>
    public static VolumeIdentity FromBackingPath(string canonicalPath)
    {
        var h = SHA256.HashData(Encoding.UTF8.GetBytes(canonicalPath));
        return new VolumeIdentity(Convert.ToHexStringLower(h, 0, 16));
    }
}
