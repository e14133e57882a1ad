using TcmuSharedVolume.Linux.Netlink;

namespace TcmuSharedVolume.Tests.Netlink;

/// <summary>Against this host's real generic netlink controller, which exists even without TCMU.</summary>
public class GenericNetlinkSocketTests
{
    [Fact]
    public void AFamilyTheKernelDoesNotHaveIsAClean_NotFound()
    {
        using var socket = GenericNetlinkSocket.Open();
        Assert.False(socket.TryResolveFamily(TcmuNetlinkMessages.FamilyName, out var family, out var error));
        Assert.Null(family);
        Assert.Equal("generic netlink family 'TCM-USER' not found", error);
        var e = Assert.Throws<NetlinkException>(() => socket.ResolveFamily("TCM-USER"));
        Assert.Equal(2, e.Errno);
    }

    [Fact]
    public void TheControllerResolvesItselfWithItsNotifyGroup()
    {
        // nlctrl is always there: this checks the request and the nested group parsing end to end.
        using var socket = GenericNetlinkSocket.Open();
        var family = socket.ResolveFamily("nlctrl");
        Assert.Equal(Nl.GenlIdCtrl, family.Id);
        Assert.Equal("nlctrl", family.Name);
        Assert.True(family.MulticastGroups.ContainsKey("notify"));
        socket.JoinGroup(family.MulticastGroups["notify"]);
        Assert.Equal(0, socket.Receive(new byte[4096], wait: false));
    }

    [Fact]
    public void OpeningTheTcmuChannelWithoutTheModuleSaysWhy()
    {
        Assert.False(TcmuNetlinkChannel.TryOpen(out var channel, out var error));
        Assert.Null(channel);
        Assert.Equal("generic netlink family 'TCM-USER' not found (is the target_core_user module loaded?)", error);
    }

    [Fact]
    public void ADatagramFromAnotherProcessIsNotTakenForTheKernels()
    {
        // A local process posing as the kernel (it needs CAP_NET_ADMIN to get through at all,
        // which the test runs with as root) must not be able to announce or remove devices.
        using var daemon = GenericNetlinkSocket.Open();
        using var impostor = GenericNetlinkSocket.Open();
        var forged = new byte[20];
        BitConverter.TryWriteBytes(forged.AsSpan(0), forged.Length);
        try
        {
            impostor.SendTo(daemon.PortId, forged);
        }
        catch (IOException e) when (e.Message.Contains("Operation not permitted"))
        {
            return; // without CAP_NET_ADMIN the kernel itself refuses: nothing to drop
        }
        Assert.Equal(0, daemon.Receive(new byte[4096], wait: false));
        Assert.Equal(1, daemon.DroppedFromUserspace);

        // The kernel's own answers still arrive.
        Assert.Equal(Nl.GenlIdCtrl, daemon.ResolveFamily("nlctrl").Id);
    }
}
