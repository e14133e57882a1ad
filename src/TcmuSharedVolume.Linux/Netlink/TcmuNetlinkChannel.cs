using System.Diagnostics.CodeAnalysis;
using TcmuSharedVolume.Diagnostics;

namespace TcmuSharedVolume.Linux.Netlink;

/// <summary>
/// The daemon's TCM-USER netlink endpoint: resolves the family and its "config" multicast group,
/// joins it, announces reply support, receives device events and sends the *_DONE replies.
/// <para>Caution (docs/tcmu.md §9): once SET_FEATURES(1) was sent, every device whose
/// <c>nl_reply_supported</c> is ≥ 0 makes its configfs write wait, without timeout, for some
/// process to reply. This daemon replies only for sharedvol/ devices; devices of other handlers
/// need their own daemon (tcmu-runner) to answer.</para>
/// </summary>
public sealed class TcmuNetlinkChannel : IDisposable
{
    private readonly GenericNetlinkSocket _socket;
    private readonly byte[] _receiveBuffer = new byte[16384];
    private readonly byte[] _sendBuffer = new byte[128];

    private TcmuNetlinkChannel(GenericNetlinkSocket socket, GenlFamily family, uint group)
    {
        _socket = socket;
        Family = family;
        GroupId = group;
    }

    public GenlFamily Family { get; }

    public uint GroupId { get; }

    /// <summary>For epoll: readable when events are queued.</summary>
    public int Fd => _socket.Fd;

    public static bool TryOpen([NotNullWhen(true)] out TcmuNetlinkChannel? channel, [NotNullWhen(false)] out string? error,
        bool announceReplySupport = true)
    {
        channel = null;
        GenericNetlinkSocket? socket = null;
        try
        {
            socket = GenericNetlinkSocket.Open();
            if (!socket.TryResolveFamily(TcmuNetlinkMessages.FamilyName, out var family, out error))
            {
                error += " (is the target_core_user module loaded?)";
                socket.Dispose();
                return false;
            }
            if (!family.MulticastGroups.TryGetValue(TcmuNetlinkMessages.ConfigGroup, out var group))
            {
                error = $"generic netlink family {family.Name} has no '{TcmuNetlinkMessages.ConfigGroup}' multicast group";
                socket.Dispose();
                return false;
            }
            socket.JoinGroup(group);
            channel = new TcmuNetlinkChannel(socket, family, group);
            if (announceReplySupport)
                channel.SendSetFeatures(true);
            return true;
        }
        catch (NetlinkException e)
        {
            socket?.Dispose();
            error = e.Message;
            return false;
        }
    }

    public void SendSetFeatures(bool kernelWaitsForReplies)
    {
        int n = TcmuNetlinkMessages.WriteSetFeatures(_sendBuffer, Family.Id, _socket.NextSequence(), kernelWaitsForReplies);
        _socket.Send(_sendBuffer.AsSpan(0, n));
    }

    /// <summary>
    /// Reads one datagram and appends the device events in it. Error messages from the kernel
    /// (a reply it refused, e.g. ENODEV for a device id no longer pending) are logged.
    /// Returns false when <paramref name="wait"/> is false and nothing was queued.
    /// </summary>
    public bool Receive(List<TcmuNetlinkEvent> events, bool wait = true)
    {
        int n = _socket.Receive(_receiveBuffer, wait);
        if (n == 0) return false;
        var reader = new NetlinkMessageReader(_receiveBuffer.AsSpan(0, n));
        while (reader.TryRead(out var message))
        {
            if (message.TryGetError(out int err))
            {
                if (err != 0) Log.Warning($"TCM-USER netlink: the kernel refused message {message.Sequence}: {Interop.Libc.ErrorMessage(-err)}");
                continue;
            }
            if (message.Type != Family.Id) continue;
            if (TcmuNetlinkEvent.TryParse(message.Payload, out var evt, out var error))
                events.Add(evt);
            else
                Log.Warning($"TCM-USER netlink: ignored a message: {error}");
        }
        if (reader.Malformed) Log.Warning("TCM-USER netlink: a datagram ended in a malformed message");
        return true;
    }

    /// <summary>Sends the *_DONE reply for an event: 0 to accept, −errno to refuse.</summary>
    public void Reply(TcmuNetlinkEvent evt, int status)
    {
        int n = TcmuNetlinkMessages.WriteReply(_sendBuffer, Family.Id, _socket.NextSequence(), evt.ReplyCommand, status, evt.DeviceId);
        _socket.Send(_sendBuffer.AsSpan(0, n));
    }

    public void Dispose() => _socket.Dispose();
}
