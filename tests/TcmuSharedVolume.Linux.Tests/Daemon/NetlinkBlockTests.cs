using TcmuSharedVolume.Linux.Configfs;
using TcmuSharedVolume.Tests.Configfs;

namespace TcmuSharedVolume.Tests.Daemon;

public sealed class NetlinkBlockTests : IDisposable
{
    private readonly FakeLio _lio = new();

    public void Dispose() => _lio.Dispose();

    private string Parameter(string name) => File.ReadAllText(Path.Combine(_lio.ModuleParameters, name)).Trim();

    [Fact]
    public void StartUpAdoptionRunsBlockedAndUnblocksEvenWhenItThrows()
    {
        var configfs = new TargetConfigfs(_lio.Root, _lio.ModuleParameters);
        string? during = null;
        Assert.Throws<InvalidOperationException>(() => TcmuSharedVolume.Daemon.Daemon.WithNetlinkBlocked(configfs, blocked =>
        {
            Assert.True(blocked);
            during = Parameter("block_netlink");
            throw new InvalidOperationException("adoption blew up");
        }));
        Assert.Equal("1", during);
        Assert.Equal("1", Parameter("reset_netlink"));
        Assert.Equal("0", Parameter("block_netlink"));
    }
}
