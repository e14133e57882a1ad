using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Daemon;

/// <summary>
/// sd-bus is single-threaded: the service is created, run and disposed on this one thread,
/// so a slow D-Bus client never holds up netlink replies on the control thread.
/// </summary>
internal sealed class DBusThread : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private Exception? _startError;

    public DBusThread(TcmuServiceHandlers handlers)
    {
        _thread = new Thread(() => Run(handlers)) { IsBackground = true, Name = "dbus" };
        _thread.Start();
        _started.Wait();
        if (_startError is { } e) throw e;
    }

    public bool IsAlive => _thread.IsAlive;

    private void Run(TcmuServiceHandlers handlers)
    {
        TcmuService service;
        try
        {
            service = TcmuService.Start(handlers);
        }
        catch (Exception e)
        {
            _startError = e;
            _started.Set();
            return;
        }
        _started.Set();
        using (service)
        {
            try
            {
                service.Run(_stop.Token);
            }
            catch (Exception e) when (e is DBusException or IOException)
            {
                Log.Error($"D-Bus service failed: {e.Message}");
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _thread.Join(TimeSpan.FromSeconds(5));
        _stop.Dispose();
        _started.Dispose();
    }
}
