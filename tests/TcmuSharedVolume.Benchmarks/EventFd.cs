using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Linux.Tcmu;

namespace TcmuSharedVolume.Benchmarks;

/// <summary>The "uio fd" of a simulated ring: an eventfd the benchmark signals once per batch,
/// so the kernel-side notify is not billed to the daemon.</summary>
internal sealed unsafe class EventFd : IRingEventSource, IDisposable
{
    public int Fd { get; } = Libc.eventfd(0, Libc.EFD_NONBLOCK | Libc.EFD_CLOEXEC);

    public void Signal()
    {
        ulong one = 1;
        Libc.write(Fd, &one, sizeof(ulong));
    }

    public void Dispose() => Libc.close(Fd);
}
