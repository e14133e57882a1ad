using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_notify_ack", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_notify_ack(nint ioctx, string oid, ulong notifyId, ulong cookie, byte* buffer, int length);
}
