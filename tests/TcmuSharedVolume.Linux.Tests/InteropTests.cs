using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Tests;

public class InteropTests
{
    [Fact]
    public unsafe void EpollEventHasTheKernelLayout()
    {
        // x86_64 packs struct epoll_event to 12 bytes; a wrong layout corrupts every wait.
        Assert.Equal(12, sizeof(EpollEvent));
        Assert.Equal(4, (int)Marshal.OffsetOf<EpollEvent>(nameof(EpollEvent.Data)));
    }
}
