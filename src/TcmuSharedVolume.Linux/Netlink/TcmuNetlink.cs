using System.Diagnostics.CodeAnalysis;
using TcmuSharedVolume.Volumes;
using TcmuSharedVolume.Linux.Discovery;

namespace TcmuSharedVolume.Linux.Netlink;

/// <summary><c>enum tcmu_genl_cmd</c> (docs/tcmu.md §9).</summary>
public enum TcmuCommand : byte
{
    Unspec = 0,
    AddedDevice = 1,
    RemovedDevice = 2,
    ReconfigDevice = 3,
    AddedDeviceDone = 4,
    RemovedDeviceDone = 5,
    ReconfigDeviceDone = 6,
    SetFeatures = 7,
}

/// <summary><c>enum tcmu_genl_attr</c>.</summary>
public static class TcmuAttr
{
    public const ushort Device = 1;
    public const ushort Minor = 2;
    public const ushort Pad = 3;
    public const ushort DevCfg = 4;
    public const ushort DevSize = 5;
    public const ushort WriteCache = 6;
    public const ushort CmdStatus = 7;
    public const ushort DeviceId = 8;
    public const ushort SuppKernCmdReply = 9;
}

/// <summary>
/// A TCM-USER multicast event. Every event carries the UIO name, minor and device id; a RECONFIG
/// carries exactly one of the new dev_config, size or write-cache setting.
/// </summary>
public sealed record TcmuNetlinkEvent(
    TcmuCommand Command,
    string Device,
    uint Minor,
    uint DeviceId,
    string? NewDevConfig = null,
    ulong? NewDevSize = null,
    bool? NewWriteCache = null)
{
    /// <summary>The <c>*_DONE</c> command that answers this event.</summary>
    public TcmuCommand ReplyCommand => Command switch
    {
        TcmuCommand.AddedDevice => TcmuCommand.AddedDeviceDone,
        TcmuCommand.RemovedDevice => TcmuCommand.RemovedDeviceDone,
        TcmuCommand.ReconfigDevice => TcmuCommand.ReconfigDeviceDone,
        _ => throw new InvalidOperationException($"{Command} has no reply"),
    };

    /// <summary>The device's current dev_config, from its UIO name (empty when it has none).</summary>
    public string DevConfig => UioDeviceName.TryParse(Device, out _, out _, out var c) ? c : "";

    public int? HbaIndex => UioDeviceName.TryParse(Device, out var h, out _, out _) ? h : null;

    public string? DeviceName => UioDeviceName.TryParse(Device, out _, out var n, out _) ? n : null;

    /// <summary>
    /// Reply only for devices of ours (dev_config starts with sharedvol/). The kernel takes the first
    /// reply that matches a device id, so answering for another handler's device would decide its
    /// fate (docs/tcmu.md §9, tcmu-runner #678).
    /// </summary>
    public bool ShouldReply => VolumeConfig.IsOurs(DevConfig);

    /// <summary>Parses a genl message body (genlmsghdr + attributes) from the TCM-USER family.</summary>
    public static bool TryParse(ReadOnlySpan<byte> genlPayload, [NotNullWhen(true)] out TcmuNetlinkEvent? evt, [NotNullWhen(false)] out string? error)
    {
        evt = null;
        if (!GenlMessage.TryParse(genlPayload, out var genl))
        {
            error = "message shorter than a genl header";
            return false;
        }
        var command = (TcmuCommand)genl.Command;
        if (command is not (TcmuCommand.AddedDevice or TcmuCommand.RemovedDevice or TcmuCommand.ReconfigDevice))
        {
            error = $"not a device event: command {genl.Command}";
            return false;
        }
        string? device = null;
        uint? minor = null, deviceId = null;
        string? cfg = null;
        ulong? size = null;
        bool? wce = null;
        var reader = new NetlinkAttributeReader(genl.Attributes);
        while (reader.TryRead(out var type, out var value))
        {
            switch (type)
            {
                case TcmuAttr.Device: device = NetlinkAttributeReader.String(value); break;
                case TcmuAttr.Minor when NetlinkAttributeReader.TryU32(value, out var m): minor = m; break;
                case TcmuAttr.DeviceId when NetlinkAttributeReader.TryU32(value, out var d): deviceId = d; break;
                case TcmuAttr.DevCfg: cfg = NetlinkAttributeReader.String(value); break;
                case TcmuAttr.DevSize when NetlinkAttributeReader.TryU64(value, out var s): size = s; break;
                case TcmuAttr.WriteCache when NetlinkAttributeReader.TryU8(value, out var w): wce = w != 0; break;
            }
        }
        if (reader.Malformed)
        {
            error = $"{command}: malformed attributes";
            return false;
        }
        if (device is null || minor is null || deviceId is null)
        {
            error = $"{command} without {(device is null ? "DEVICE" : minor is null ? "MINOR" : "DEVICE_ID")}";
            return false;
        }
        evt = new TcmuNetlinkEvent(command, device, minor.Value, deviceId.Value, cfg, size, wce);
        error = null;
        return true;
    }
}

/// <summary>Messages userspace sends to TCM-USER (genl version 2, no ACK: as libtcmu sends them).</summary>
public static class TcmuNetlinkMessages
{
    public const string FamilyName = "TCM-USER";
    public const string ConfigGroup = "config";
    public const byte Version = 2;

    /// <summary>SET_FEATURES(SUPP_KERN_CMD_REPLY): from now on the kernel waits for *_DONE replies (docs/tcmu.md §9).</summary>
    public static int WriteSetFeatures(Span<byte> buffer, ushort familyId, uint sequence, bool kernelWaitsForReplies = true)
    {
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(familyId, Nl.FlagRequest, sequence);
        w.GenlHeader((byte)TcmuCommand.SetFeatures, Version);
        w.PutU8(TcmuAttr.SuppKernCmdReply, kernelWaitsForReplies ? (byte)1 : (byte)0);
        return w.EndMessage();
    }

    /// <summary>A *_DONE reply: CMD_STATUS (0 or −errno) and DEVICE_ID.</summary>
    public static int WriteReply(Span<byte> buffer, ushort familyId, uint sequence, TcmuCommand doneCommand, int status, uint deviceId)
    {
        if (doneCommand is not (TcmuCommand.AddedDeviceDone or TcmuCommand.RemovedDeviceDone or TcmuCommand.ReconfigDeviceDone))
            throw new ArgumentOutOfRangeException(nameof(doneCommand), doneCommand, "not a *_DONE command");
        if (status > 0)
            throw new ArgumentOutOfRangeException(nameof(status), status, "status is 0 or a negative errno");
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(familyId, Nl.FlagRequest, sequence);
        w.GenlHeader((byte)doneCommand, Version);
        w.PutS32(TcmuAttr.CmdStatus, status);
        w.PutU32(TcmuAttr.DeviceId, deviceId);
        return w.EndMessage();
    }
}
