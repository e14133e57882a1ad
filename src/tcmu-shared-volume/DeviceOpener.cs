using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Linux.Tcmu;
using DiscoveredDevice = TcmuSharedVolume.Linux.Discovery.UioDevice;

namespace TcmuSharedVolume.Daemon;

/// <summary>One device's ring as the daemon maps it: the ring over the mapping, the fd the event
/// loop waits on, and what <see cref="IDisposable.Dispose"/> frees (munmap, close). Dispose only
/// once the event loop no longer touches the ring: iovecs point into the mapping.</summary>
public interface IRingMapping : IDisposable
{
    TcmuRing Ring { get; }

    IRingEventSource Events { get; }
}

/// <summary>What <see cref="DeviceManager"/> opens from the operating system for a device: its
/// UIO ring and the backing store of its volume. Tests put a simulated ring or a gated store here.</summary>
public interface IDeviceOpener
{
    /// <summary>Maps the device's ring. Throws (IOException, FormatException, InvalidDataException, …) when it cannot.</summary>
    IRingMapping OpenRing(DiscoveredDevice found, string name);

    /// <summary>Sees every backing store the daemon opens, before any path uses it.</summary>
    IBackingStore WrapStore(IBackingStore store);
}

/// <summary>The real thing: <c>/dev/uioN</c> mmapped whole, and the stores as opened.</summary>
public sealed class UioDeviceOpener(string sysClassUio = UioDevice.DefaultSysfsRoot, string devRoot = UioDevice.DefaultDevRoot)
    : IDeviceOpener
{
    public IRingMapping OpenRing(DiscoveredDevice found, string name)
    {
        var uio = UioDevice.Open(UioDevice.ReadInfo(sysClassUio, found.UioIndex), devRoot);
        try
        {
            unsafe
            {
                return new Mapping(uio, new TcmuRing(uio.Base, uio.Length, uio, name));
            }
        }
        catch
        {
            uio.Dispose();
            throw;
        }
    }

    public IBackingStore WrapStore(IBackingStore store) => store;

    private sealed class Mapping(UioDevice uio, TcmuRing ring) : IRingMapping
    {
        public TcmuRing Ring => ring;

        public IRingEventSource Events => uio;

        public void Dispose()
        {
            ring.Dispose();
            uio.Dispose();
        }
    }
}
