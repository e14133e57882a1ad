using System.Globalization;
using System.Text.RegularExpressions;

namespace TcmuSharedVolume.Linux.Configfs;

/// <summary>What <c>info</c> of a user backstore says (K6.1 <c>transport_dump_dev_state</c> + <c>tcmu_show_configfs_dev_params</c>).</summary>
public sealed record BackstoreInfo(
    bool Activated,
    int? MaxQueueDepth,
    int? SectorSize,
    int? HwMaxSectors,
    string? Config,
    long? SizeBytes,
    int? MaxDataAreaMB,
    int? DataPagesPerBlk,
    int? CmdRingSizeMB)
{
    public static BackstoreInfo Parse(string text)
    {
        // Config: may itself contain spaces, so it runs up to the " Size: " that follows it.
        string? config = null;
        var cm = Regex.Match(text, @"Config: (.*?) Size: ", RegexOptions.Singleline);
        if (cm.Success && cm.Groups[1].Value != "NULL") config = cm.Groups[1].Value;
        return new BackstoreInfo(
            Regex.IsMatch(text, @"Status: ACTIVATED"),
            Int(text, "Max Queue Depth"),
            Int(text, "SectorSize"),
            Int(text, "HwMaxSectors"),
            config,
            Long(text, "Size"),
            Int(text, "MaxDataAreaMB"),
            Int(text, "DataPagesPerBlk"),
            Int(text, "CmdRingSizeMB"));
    }

    private static long? Long(string text, string key)
    {
        var m = Regex.Match(text, $@"(?:^|\s){Regex.Escape(key)}: (\d+)");
        return m.Success && long.TryParse(m.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    private static int? Int(string text, string key) => Long(text, key) is { } v && v <= int.MaxValue ? (int)v : null;
}

/// <summary>
/// A TCMU backstore in configfs, <c>core/user_N/&lt;name&gt;</c> (docs/tcmu.md §7): what the
/// daemon reads at open, the PR and TMR attributes it insists on, and the actions of the
/// restart recipe (docs/tcmu.md §13).
/// </summary>
public sealed class UserBackstore
{
    internal UserBackstore(string path, int hbaIndex, string name)
    {
        Path = path;
        HbaIndex = hbaIndex;
        Name = name;
    }

    /// <summary>Full path of the backstore's directory.</summary>
    public string Path { get; }

    public int HbaIndex { get; }

    public string Name { get; }

    /// <summary><c>user_N/name</c>, the way messages name it.</summary>
    public string DisplayName => $"user_{HbaIndex}/{Name}";

    public bool Exists => Directory.Exists(Path);

    public BackstoreInfo? ReadInfo() => ConfigfsFile.Read(File("info")) is { } text ? BackstoreInfo.Parse(text) : null;

    /// <summary>An <c>attrib/</c> file's first line, or null when the kernel has no such attribute.</summary>
    public string? ReadAttribute(string name) => ConfigfsFile.ReadLine(File("attrib", name));

    public long? ReadAttributeNumber(string name) => ConfigfsFile.ReadLong(File("attrib", name));

    /// <summary>Every attribute the kernel exposes, for diagnostics (tsvctl).</summary>
    public IReadOnlyDictionary<string, string> ReadAttributes()
    {
        var dir = File("attrib");
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(dir)) return result;
        foreach (var f in Directory.EnumerateFiles(dir))
        {
            if (ConfigfsFile.ReadLine(f) is { } v)
                result[System.IO.Path.GetFileName(f)] = v;
        }
        return result;
    }

    /// <summary>Writes an attribute; throws <see cref="IOException"/> when the kernel refuses it.</summary>
    public void WriteAttribute(string name, string value) => ConfigfsFile.Write(File("attrib", name), value);

    /// <summary>The per-backstore serial rtslib generates (not the volume's identity, docs/architecture.md §5).</summary>
    public string? UnitSerial
    {
        get
        {
            var line = ConfigfsFile.ReadLine(File("wwn", "vpd_unit_serial"));
            const string label = "T10 VPD Unit Serial Number:";
            if (line is null) return null;
            return line.StartsWith(label, StringComparison.Ordinal) ? line[label.Length..].Trim() : line;
        }
    }

    /// <summary>Logical block size the kernel advertises for the device (attrib/hw_block_size, default 512).</summary>
    public int? HwBlockSize => ReadAttributeNumber("hw_block_size") is { } v and > 0 and <= int.MaxValue ? (int)v : null;

    /// <summary>Device size in bytes: <c>info</c>'s Size:, else <c>attrib/dev_size</c>.</summary>
    public long? SizeBytes => ReadInfo()?.SizeBytes ?? ReadAttributeNumber("dev_size");

    /// <summary>
    /// Hands PERSISTENT RESERVE IN/OUT and RESERVE/RELEASE to the daemon: <c>pgr_support=0</c>
    /// (docs/tcmu.md §7), then checks that <c>emulate_pr</c> is still 1, since with 0 the kernel
    /// rejects those commands itself. A device where this fails must not be served: the kernel
    /// would then run its own per-backstore PR table beside ours.
    /// </summary>
    public (bool Ok, string? Reason) EnablePrPassthrough()
    {
        if (!Exists)
            return (false, $"backstore {DisplayName} does not exist in configfs");
        if (ReadAttribute("pgr_support") is null)
            return (false, $"the kernel has no attrib/pgr_support on {DisplayName}: it cannot pass PERSISTENT RESERVE to userspace (Linux 5.8 or later is needed)");
        try
        {
            if (ReadAttributeNumber("pgr_support") != 0)
                WriteAttribute("pgr_support", "0");
        }
        catch (IOException e)
        {
            return (false, $"cannot write attrib/pgr_support=0 on {DisplayName}: {e.Message}");
        }
        if (ReadAttributeNumber("pgr_support") != 0)
            return (false, $"attrib/pgr_support on {DisplayName} still reads {ReadAttribute("pgr_support")} after writing 0: the kernel keeps handling PR itself");
        var emulate = ReadAttributeNumber("emulate_pr");
        if (emulate != 1)
            return (false, $"attrib/emulate_pr on {DisplayName} is {(emulate?.ToString(CultureInfo.InvariantCulture) ?? "missing")}: the kernel rejects PERSISTENT RESERVE before it reaches the daemon; set it to 1");
        return (true, null);
    }

    /// <summary>Asks the kernel to put ABORT TASK / LUN RESET notifications on the ring (tmr_notification=1).</summary>
    public (bool Ok, string? Reason) EnableTmrNotification()
    {
        if (ReadAttribute("tmr_notification") is null)
            return (false, $"the kernel has no attrib/tmr_notification on {DisplayName}: task management will not reach the daemon");
        try
        {
            if (ReadAttributeNumber("tmr_notification") != 1)
                WriteAttribute("tmr_notification", "1");
        }
        catch (IOException e)
        {
            return (false, $"cannot write attrib/tmr_notification=1 on {DisplayName}: {e.Message}");
        }
        return (true, null);
    }

    /// <summary>Whether the kernel offers the restart actions (block_dev, reset_ring).</summary>
    public bool HasRingActions => System.IO.File.Exists(File("action", "block_dev")) && System.IO.File.Exists(File("action", "reset_ring"));

    /// <summary><c>action/block_dev</c> reads "blocked" or "unblocked"; null when absent.</summary>
    public bool? IsBlocked => ConfigfsFile.ReadLine(File("action", "block_dev")) switch
    {
        "blocked" => true,
        "unblocked" => false,
        _ => null,
    };

    /// <summary>1: new commands get BUSY and finished ones are reaped; 0: commands flow again.</summary>
    public void BlockDevice(bool block) => ConfigfsFile.Write(File("action", "block_dev"), block ? "1" : "0");

    /// <summary>
    /// Completes every in-flight command (BUSY so that initiators retry, or CHECK CONDITION) and
    /// zeroes the ring. Only while blocked (docs/tcmu.md §7, §13).
    /// </summary>
    public void ResetRing(bool checkCondition = false) => ConfigfsFile.Write(File("action", "reset_ring"), checkCondition ? "2" : "1");

    /// <summary>
    /// Steps 1 and 2 of the restart recipe (libtcmu <c>device_add(reopen)</c>): block, then reset the
    /// ring, before the daemon maps it; <see cref="BlockDevice"/>(false) after mapping is step 4.
    /// Kernels without the actions have nothing to reset: the reason says so and the caller goes on.
    /// </summary>
    public (bool Ok, string? Reason) BlockAndResetRing()
    {
        if (!HasRingActions)
            return (false, $"{DisplayName} has no action/block_dev and action/reset_ring: commands a previous daemon left on the ring are not failed back");
        try
        {
            BlockDevice(true);
            ResetRing();
            return (true, null);
        }
        catch (IOException e)
        {
            return (false, $"cannot block and reset the ring of {DisplayName}: {e.Message}");
        }
    }

    private string File(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);
}
