using TcmuSharedVolume.Linux.Discovery;

namespace TcmuSharedVolume.Tests.Discovery;

public sealed class UioDeviceNameTests
{
    [Theory]
    [InlineData("tcm-user/3/vol1-a/sharedvol//srv/v.img;size=1G\n", 3, "vol1-a", "sharedvol//srv/v.img;size=1G")]
    [InlineData("tcm-user/12/disk", 12, "disk", "")]
    [InlineData("tcm-user/0/d/file/x/y", 0, "d", "file/x/y")]
    public void SplitsUioNames(string uio, int hba, string name, string config)
    {
        Assert.True(UioDeviceName.TryParse(uio, out var h, out var n, out var c));
        Assert.Equal((hba, name, config), (h, n, c));
    }

    [Theory]
    [InlineData("uio_pci_generic")]
    [InlineData("tcm-user/x/d/sharedvol//a")]
    [InlineData("tcm-user/1//sharedvol//a")]
    [InlineData("tcm-user/1")]
    public void RejectsOtherUioNames(string uio) => Assert.False(UioDeviceName.TryParse(uio, out _, out _, out _));
}
