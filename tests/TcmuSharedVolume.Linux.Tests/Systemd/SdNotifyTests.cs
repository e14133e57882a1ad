using System.Net.Sockets;
using System.Text;
using TcmuSharedVolume.Linux.Systemd;

namespace TcmuSharedVolume.Tests.Systemd;

/// <summary>SdNotify against a datagram socket that plays systemd's NOTIFY_SOCKET.</summary>
public sealed class SdNotifyTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tsv-notify-").FullName;
    private readonly Socket _systemd = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly string _path;

    public SdNotifyTests()
    {
        _path = Path.Combine(_dir, "notify");
        _systemd.Bind(new UnixDomainSocketEndPoint(_path));
        _systemd.ReceiveTimeout = 5000;
    }

    public void Dispose()
    {
        _systemd.Dispose();
        Directory.Delete(_dir, true);
    }

    private string Receive()
    {
        var buffer = new byte[4096];
        int n = _systemd.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Fact]
    public void ReadyStatusWatchdogAndStoppingArriveAsDatagrams()
    {
        using var notify = new SdNotify(_path);

        notify.Ready("serving 2 volumes");
        notify.Status("3 paths\nbound");
        notify.Watchdog();
        notify.Stopping("draining");

        Assert.Equal("READY=1\nSTATUS=serving 2 volumes", Receive());
        Assert.Equal("STATUS=3 paths bound", Receive()); // a newline would start a new assignment
        Assert.Equal("WATCHDOG=1", Receive());
        Assert.Equal("STOPPING=1\nSTATUS=draining", Receive());
    }

    [Fact]
    public void ReloadIsBracketedByReloadingAndReady()
    {
        using var notify = new SdNotify(_path);

        notify.Reloading();
        notify.ReloadDone("reloaded");

        Assert.Equal("RELOADING=1", Receive());
        Assert.Equal("READY=1\nSTATUS=reloaded", Receive());
    }

    [Fact]
    public void AbstractSocketNamesStartWithAt()
    {
        string name = $"tsv-test-{Guid.NewGuid():N}";
        using var abstractSocket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        abstractSocket.Bind(new UnixDomainSocketEndPoint("\0" + name));
        abstractSocket.ReceiveTimeout = 5000;
        using var notify = new SdNotify("@" + name);

        Assert.True(notify.Send("WATCHDOG=1"));
        var buffer = new byte[64];
        Assert.Equal("WATCHDOG=1", Encoding.UTF8.GetString(buffer, 0, abstractSocket.Receive(buffer)));
    }

    [Fact]
    public void WithoutNotifySocketEverythingIsANoOp()
    {
        using var notify = new SdNotify(null, watchdogUsec: "30000000");

        Assert.False(notify.Enabled);
        Assert.False(notify.Send("READY=1"));
        notify.Ready("x");
        notify.Watchdog();
        Assert.Equal(TimeSpan.FromSeconds(30), notify.WatchdogInterval);
    }

    [Fact]
    public void AGoneSystemdIsNotAnError()
    {
        using var notify = new SdNotify(Path.Combine(_dir, "nobody-listens"));
        Assert.False(notify.Send("WATCHDOG=1"));
    }

    [Theory]
    [InlineData("30000000", null, 30_000)]
    [InlineData("500000", "", 500)]
    [InlineData("0", null, -1)]
    [InlineData("soon", null, -1)]
    [InlineData(null, null, -1)]
    [InlineData("30000000", "1", -1)] // WATCHDOG_PID names another process (pid 1): not our watchdog
    public void WatchdogIntervalComesFromWatchdogUsecWhenItIsOurs(string? usec, string? pid, int expectedMs)
    {
        using var notify = new SdNotify(_path, usec, pid);
        Assert.Equal(expectedMs < 0 ? null : TimeSpan.FromMilliseconds(expectedMs), notify.WatchdogInterval);
    }

    [Fact]
    public void WatchdogPidEqualToOursKeepsTheWatchdog()
    {
        using var notify = new SdNotify(_path, "2000000", Environment.ProcessId.ToString());
        Assert.Equal(TimeSpan.FromSeconds(2), notify.WatchdogInterval);
    }
}
