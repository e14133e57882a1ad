using System.Runtime.InteropServices;
using System.Text;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Backends;

/// <summary>One target line of a device-mapper table or status: <c>dmsetup table</c> / <c>dmsetup status</c>.</summary>
public readonly record struct DmTarget(string Type, ulong StartSector, ulong LengthSectors, string Parameters);

/// <summary>
/// A device-mapper device's table and status through the DM ioctl interface
/// (<c>/dev/mapper/control</c>, DM_TABLE_STATUS), the way <c>dmsetup</c> reads them, without
/// running it: the daemon needs no lvm2 tools. The device is named by its device number.
/// </summary>
public static unsafe class DeviceMapper
{
    // linux/dm-ioctl.h: struct dm_ioctl is 312 bytes; struct dm_target_spec 40, parameters follow.
    private const int IoctlSize = 312;
    private const int TargetSpecSize = 40;
    private const uint StatusTableFlag = 1 << 4;  // DM_STATUS_TABLE_FLAG: the table, not the status
    private const uint BufferFullFlag = 1 << 8;   // DM_BUFFER_FULL_FLAG
    /// <summary>_IOWR(0xfd, DM_TABLE_STATUS_CMD = 12, struct dm_ioctl).</summary>
    private const nuint DM_TABLE_STATUS = 0xC138FD0C;
    private const string Control = "/dev/mapper/control";

    /// <summary>The table (<paramref name="table"/>) or the status lines of device
    /// <paramref name="major"/>:<paramref name="minor"/>; null when there is no such dm device or
    /// no device-mapper on this host.</summary>
    public static List<DmTarget>? Query(uint major, uint minor, bool table)
    {
        int fd = Libc.open(Control, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            for (int size = 16 << 10; size <= 1 << 20; size *= 4)
            {
                byte[] buffer = new byte[size];
                fixed (byte* b = buffer)
                {
                    *(uint*)b = 4;                   // version: DM_VERSION_MAJOR 4, minor 0, patch 0
                    *(uint*)(b + 12) = (uint)size;   // data_size
                    *(uint*)(b + 16) = IoctlSize;    // data_start
                    *(uint*)(b + 28) = table ? StatusTableFlag : 0;
                    // dev: the kernel's new_encode_dev, which for these numbers is glibc's makedev.
                    *(ulong*)(b + 40) = (minor & 0xFFu) | ((ulong)major << 8) | ((ulong)(minor & ~0xFFu) << 12);
                    if (Libc.ioctl(fd, DM_TABLE_STATUS, b) < 0) return null;
                    if ((*(uint*)(b + 28) & BufferFullFlag) != 0) continue;
                    return ParseTargets(buffer, *(uint*)(b + 16), *(uint*)(b + 20));
                }
            }
            return null;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    internal static List<DmTarget> ParseTargets(byte[] buffer, uint dataStart, uint count)
    {
        var targets = new List<DmTarget>((int)Math.Min(count, 64));
        int at = (int)dataStart;
        for (uint i = 0; i < count && at + TargetSpecSize <= buffer.Length; i++)
        {
            var spec = buffer.AsSpan(at);
            ulong start = MemoryMarshal.Read<ulong>(spec);
            ulong length = MemoryMarshal.Read<ulong>(spec[8..]);
            uint next = MemoryMarshal.Read<uint>(spec[20..]);
            string type = CString(spec.Slice(24, 16));
            string parameters = CString(spec[TargetSpecSize..]);
            targets.Add(new DmTarget(type, start, length, parameters));
            if (next == 0) break;
            // On DM_TABLE_STATUS, next counts from the first target spec (after data_start).
            at = (int)dataStart + (int)next;
        }
        return targets;
    }

    private static string CString(ReadOnlySpan<byte> bytes)
    {
        int nul = bytes.IndexOf((byte)0);
        return Encoding.ASCII.GetString(nul < 0 ? bytes : bytes[..nul]);
    }
}

/// <summary>
/// What the daemon needs to know of a dm-thin volume (an LVM thin LV): whether a discarded range
/// reads zeroes afterwards, and how far its mapped blocks reach.
/// </summary>
public sealed class ThinVolume(uint major, uint minor, bool discardReadsZeroes)
{
    /// <summary>
    /// True when deallocated blocks read zeroes and stay zero until written: no external origin
    /// (unprovisioned blocks of an external-origin thin volume read the origin's data) and a pool
    /// that zeroes newly provisioned blocks (with <c>skip_block_zeroing</c>, writing one sector of
    /// a discarded chunk maps the whole chunk with stale data around it; LBPRZ would be a lie).
    /// </summary>
    public bool DiscardReadsZeroes { get; } = discardReadsZeroes;

    /// <summary>The thin volume at major:minor, or null when it is not a dm-thin device (or not a
    /// dm device at all, or no device-mapper here).</summary>
    public static ThinVolume? Of(uint major, uint minor)
    {
        if (DeviceMapper.Query(major, minor, table: true) is not { Count: > 0 } targets) return null;
        if (targets.Any(t => t.Type != "thin")) return null;
        bool zeroes = true;
        foreach (var t in targets)
        {
            if (ParseThinTable(t.Parameters) is not { } thin) return null;
            if (thin.ExternalOrigin) zeroes = false;
            var pool = DeviceMapper.Query(thin.PoolMajor, thin.PoolMinor, table: true);
            if (pool is not [{ Type: "thin-pool" } p] || !PoolZeroesNewBlocks(p.Parameters)) zeroes = false;
        }
        return new ThinVolume(major, minor, zeroes);
    }

    /// <summary>
    /// Bytes from the start of the volume up to the end of its highest mapped block, from the
    /// thin target's status (<c>&lt;mapped sectors&gt; &lt;highest mapped sector&gt;</c>, "-"
    /// when nothing is mapped); null when the status cannot be read or the pool has failed.
    /// </summary>
    public long? MappedEndBytes()
    {
        if (DeviceMapper.Query(major, minor, table: false) is not [var status]) return null;
        return ParseMappedEnd(status.Parameters);
    }

    /// <summary>The thin target's table: <c>POOL_MAJ:MIN DEV_ID [EXTERNAL_ORIGIN]</c>.</summary>
    public static (uint PoolMajor, uint PoolMinor, bool ExternalOrigin)? ParseThinTable(string parameters)
    {
        var f = parameters.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 2 || ParseDeviceNumber(f[0]) is not { } pool) return null;
        return (pool.Major, pool.Minor, f.Length > 2);
    }

    /// <summary>The pool's table: <c>META DATA BLOCK_SECTORS LOW_WATER [N FEATURE...]</c>; false with skip_block_zeroing.</summary>
    public static bool PoolZeroesNewBlocks(string parameters) =>
        !parameters.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(4).Contains("skip_block_zeroing");

    public static long? ParseMappedEnd(string status)
    {
        var f = status.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 2 || !ulong.TryParse(f[0], out _)) return null; // "Fail", or unknown
        if (f[1] == "-") return 0;
        if (!long.TryParse(f[1], out long highest) || highest < 0 || highest >= long.MaxValue / 512) return null;
        return (highest + 1) * 512;
    }

    private static (uint Major, uint Minor)? ParseDeviceNumber(string text)
    {
        int colon = text.IndexOf(':');
        return colon > 0 && uint.TryParse(text.AsSpan(0, colon), out uint major) && uint.TryParse(text.AsSpan(colon + 1), out uint minor)
            ? (major, minor) : null;
    }
}
