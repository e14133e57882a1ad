using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>
    /// Watches the object: onNotify(arg, notifyId, cookie, notifierId, data, dataLength) runs on a
    /// librados thread for every notification (answer each with rados_notify_ack), onError(arg,
    /// cookie, err) when the watch is lost (-ENOTCONN, or -ESHUTDOWN when blocklisted).
    /// </summary>
    [LibraryImport(Library, EntryPoint = "rados_watch2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_watch2(nint ioctx, string oid, ulong* cookie,
        delegate* unmanaged<nint, ulong, ulong, ulong, void*, nuint, void> onNotify,
        delegate* unmanaged<nint, ulong, int, void> onError, nint arg);
}
